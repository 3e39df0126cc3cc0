"""Anchor specs (``lcsc search/merge --anchor SPEC``) resolved against a window of a recorded run.

The window is a folder ``RUN/windows/<end>/`` written by :class:`lcsc.training.CheckpointRecorder`, so
``RUN = window.parent.parent``. A SPEC is

- a checkpoint file (or diffusers folder) of the window's architecture: kind ``file``, named after its stem;
- ``ema:NAME``: ``RUN/ema/NAME/ema-<E>.safetensors`` with E the window's last step;
- ``ema-start:NAME``: that EMA at the window's start, S = first step − interval (the median step gap; S may be 0);
- ``phema:SIGMA``: the post-hoc EMA of σ_rel = SIGMA at step E from ``RUN/phema`` (:class:`lcsc.merge.PosthocEMA`);
- ``ema``: every ``RUN/ema/*`` at step E, sorted by name, each as ``ema:NAME``. For a diffusers / accelerate run
  (``checkpoint-N/`` folders) ``ema`` (or ``ema:unet_ema``) is the last ``checkpoint-N/unet_ema/``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lcsc.checkpoints.anchors import Anchor, anchor_from_file, state_dict_sha256
from lcsc.checkpoints.format import checkpoint_name
from lcsc.checkpoints.reader import DIFFUSERS_WEIGHTS, checkpoint_interval
from lcsc.checkpoints.training_folders import CHECKPOINT_DIR, is_training_checkpoint
from lcsc.errors import CheckpointError, LCSCError, first_line

__all__ = ["resolve_anchors", "resolve_recorded_anchors", "register_phema_reconstruction"]

Resolved = list[tuple[Anchor, dict[str, torch.Tensor]]]
PhemaReconstruction = Callable[[Path, int, float], dict[str, torch.Tensor]]
_PHEMA: list[PhemaReconstruction] = []  # lcsc.merge.posthoc's, registered when it is imported (``import lcsc`` does)
_KEYWORD = re.compile(r"(ema|ema-start|phema)(?::(.*))?")
_SPECS = "a checkpoint path, ema, ema:NAME, ema-start:NAME or phema:SIGMA"


def resolve_anchors(specs: Sequence[str], window: str | Path | Sequence[str | Path], stack: Any, *,
                    key: str | None = None) -> Resolved:
    """Each SPEC's anchors (``ema`` may give several) with their tensors, in the order given; file anchors whose
    stems repeat get ``-2``, ``-3``, … ``stack`` (the window's :class:`~lcsc.checkpoints.CheckpointStack`) gives
    the window's steps; ``key`` selects a wrapped state dict in file anchors. Errors are one CheckpointError line
    naming the spec and the file or folder at fault."""
    out: Resolved = []
    for spec in specs:
        out += _resolve_one(str(spec), window, stack, key)
    return _unique_names(out)


def resolve_recorded_anchors(records: Sequence[dict[str, Any]], window: str | Path | Sequence[str | Path],
                             stack: Any, *, source: str, key: str | None = None) -> Resolved:
    """The anchors a coefficient file (``source``) names, resolved again from their recorded specs (relative to
    ``window``; a file anchor falls back to its recorded absolute path) and checked against their sha256."""
    out: Resolved = []
    for rec in records:
        name, spec = rec["name"], rec.get("spec")
        if not spec:
            raise CheckpointError(f"anchor {name!r} in {source} has no recorded spec; give it with --anchor SPEC")
        if rec.get("kind") == "file" and not Path(spec).exists() and rec.get("source"):
            spec = rec["source"]
        try:
            found = _resolve_one(spec, window, stack, key)
        except CheckpointError as exc:
            raise CheckpointError(f"anchor {name!r} recorded in {source}: {first_line(exc, 400)}") from None
        anchor, tensors = next(((a, t) for a, t in found if a.name == name), found[0])
        if anchor.sha256 != rec["sha256"]:
            raise CheckpointError(f"anchor {name!r}: {anchor.source} has sha256 {anchor.sha256[:12]}… but {source} "
                                  f"recorded {rec['sha256'][:12]}…; the anchor's weights changed since the search")
        out.append((dataclasses.replace(anchor, name=name, spec=rec["spec"]), tensors))
    return out


def _resolve_one(spec: str, window, stack, key: str | None) -> Resolved:
    match = _KEYWORD.fullmatch(spec)
    if match is None:
        path = Path(spec)
        if not path.exists():
            raise CheckpointError(f"anchor {spec!r}: no such file or folder (an anchor is {_SPECS})")
        return [anchor_from_file(path, kind="file", spec=spec, key=key)]
    kind, arg = match.group(1), match.group(2)
    if arg == "" or (arg is None and kind != "ema"):
        raise CheckpointError(f"anchor {spec!r}: {kind} needs {'SIGMA' if kind == 'phema' else 'NAME'} "
                              f"({kind}:{'0.05' if kind == 'phema' else 'hl-500'}); an anchor is {_SPECS}")
    if kind == "phema":
        return [_phema(spec, arg, window, stack)]
    training = _training_checkpoint(stack)
    if training is not None:
        if kind == "ema-start":
            raise CheckpointError(f"anchor {spec!r}: window-start EMA snapshots exist only in runs recorded by lcsc "
                                  f"(RUN/ema/NAME/); {training.parent} is a diffusers / accelerate run")
        return [_diffusers_ema(spec, arg or "unet_ema", training)]
    run = _run_dir(window, spec)
    if kind == "ema-start":
        return [_ema_snapshot(spec, run, arg, _start_step(spec, stack), "ema-start")]
    names = [arg] if arg else _ema_names(run, spec)
    return [_ema_snapshot(f"ema:{n}", run, n, int(stack.steps[-1]), "ema") for n in names]


def _window_folder(window, spec: str) -> Path:
    items = [Path(window)] if isinstance(window, (str, Path)) else [Path(p) for p in window]
    if len(items) == 1 and items[0].is_dir():
        return items[0].resolve()
    parents = {p.resolve().parent for p in items}
    if len(parents) != 1:
        raise CheckpointError(f"anchor {spec!r} needs one window folder (RUN/windows/<end>/); the checkpoints given "
                              f"lie in {len(parents)} folders")
    return parents.pop()


def _run_dir(window, spec: str) -> Path:
    """RUN of a window ``RUN/windows/<end>/``, checked to hold ``ema/`` (or ``phema/`` for phema specs)."""
    folder = _window_folder(window, spec)
    run = folder.parent.parent
    sub = "phema" if spec.startswith("phema") else "ema"
    if not (run / sub).is_dir():
        raise CheckpointError(f"anchor {spec!r}: {run / sub}: no such folder; {spec.partition(':')[0]} anchors need "
                              f"the window {folder} to be RUN/windows/<end>/ of a run recorded by lcsc "
                              f"(snapshots in RUN/{sub}/<name>/)")
    return run


def _ema_names(run: Path, spec: str) -> list[str]:
    names = sorted(p.name for p in (run / "ema").iterdir() if p.is_dir() and any(p.glob("ema-*.safetensors")))
    if not names:
        raise CheckpointError(f"anchor {spec!r}: {run / 'ema'} holds no EMA snapshots (ema/<name>/ema-<step>.safetensors)")
    return names


def _snapshot_steps(folder: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in folder.glob("ema-*.safetensors")
                  if (m := re.fullmatch(r"ema-(\d+)\.safetensors", p.name)))


def _start_step(spec: str, stack) -> int:
    steps = [int(s) for s in stack.steps]
    start = steps[0] - checkpoint_interval(steps)
    if start < 0:
        raise CheckpointError(f"anchor {spec!r}: the window's first step {steps[0]} is less than one interval "
                              f"({checkpoint_interval(steps)}) after step 0; it has no start step")
    return start


def _ema_snapshot(spec: str, run: Path, name: str, step: int, kind: str) -> tuple[Anchor, dict[str, torch.Tensor]]:
    """``RUN/ema/NAME/ema-<step>.safetensors`` as the anchor ``kind:NAME``."""
    folder = run / "ema" / name
    if not folder.is_dir():
        raise CheckpointError(f"anchor {spec!r}: no EMA named {name!r} in {run / 'ema'}; available: "
                              f"{', '.join(_ema_names(run, spec))}")
    path = folder / checkpoint_name(step, prefix="ema")
    if not path.is_file():
        if kind == "ema-start":
            from lcsc import __version__

            raise CheckpointError(f"ema-start:{name}: {folder} has no snapshot at step {step} (the window's start); "
                                  "record with a recorder that saves window-start EMA snapshots "
                                  f"(lcsc ≥ {__version__}) or use ema:{name}")
        raise CheckpointError(f"ema:{name}: {folder} has no snapshot at step {step} (the window's end); its "
                              f"snapshots are at steps {_snapshot_steps(folder)}")
    label = f"{kind}:{name}"
    return anchor_from_file(path, name=label, kind=kind, spec=label, step=step)


def register_phema_reconstruction(reconstruct: PhemaReconstruction) -> None:
    """How ``phema:SIGMA`` anchors are rebuilt: ``reconstruct(run_dir, step, sigma_rel)`` → tensors.
    :mod:`lcsc.merge.posthoc` (a layer above checkpoints) registers :class:`~lcsc.merge.PosthocEMA`'s."""
    _PHEMA[:] = [reconstruct]


def _phema(spec: str, arg: str, window, stack) -> tuple[Anchor, dict[str, torch.Tensor]]:
    """The post-hoc EMA of σ_rel = SIGMA at the window's last step, reconstructed from ``RUN/phema``."""
    if not _PHEMA:
        raise CheckpointError(f"anchor {spec!r}: post-hoc EMA anchors need lcsc.merge (import lcsc.merge)")
    try:
        sigma = float(arg)
    except ValueError:
        raise CheckpointError(f"anchor {spec!r}: SIGMA must be a number (e.g. phema:0.05)") from None
    run, end = _run_dir(window, spec), int(stack.steps[-1])
    try:
        tensors = _PHEMA[0](run, end, sigma)
    except LCSCError as exc:
        raise CheckpointError(f"anchor {spec!r}: {first_line(exc, 400)}") from None
    name = f"phema:{sigma:g}"
    anchor = Anchor(name=name, sha256=state_dict_sha256(tensors), kind="phema", spec=name, step=end,
                    source=f"post-hoc EMA sigma_rel={sigma:g} at step {end} of {run}")
    return anchor, tensors


def _training_checkpoint(stack) -> Path | None:
    """The last ``checkpoint-N/`` folder of a diffusers / accelerate window, else None."""
    last = Path(stack.paths[-1])
    return next((p for p in (last, last.parent) if is_training_checkpoint(p)), None)


def _diffusers_ema(spec: str, name: str, folder: Path) -> tuple[Anchor, dict[str, torch.Tensor]]:
    """``checkpoint-N/<name>/`` (the training loop's EMA copy, ``unet_ema``) as the anchor ``ema:<name>``."""
    path = folder / name
    if not (path / DIFFUSERS_WEIGHTS).is_file():
        there = sorted(p.name for p in folder.iterdir() if (p / DIFFUSERS_WEIGHTS).is_file() and p.name != "unet")
        raise CheckpointError(f"anchor {spec!r}: {folder} has no {name}/ with {DIFFUSERS_WEIGHTS} (the training loop's "
                              f"EMA copy); EMA folders there: {', '.join(there) or 'none'}")
    match = CHECKPOINT_DIR.fullmatch(folder.name)
    label = f"ema:{name}"
    return anchor_from_file(path, name=label, kind="ema", spec=label, step=int(match.group(1)) if match else None)


def _unique_names(resolved: Resolved) -> Resolved:
    """File anchors whose names repeat an earlier anchor's get ``-2``, ``-3``, …"""
    seen: set[str] = set()
    out: Resolved = []
    for anchor, tensors in resolved:
        name, i = anchor.name, 2
        while anchor.kind == "file" and name in seen:
            name, i = f"{anchor.name}-{i}", i + 1
        seen.add(name)
        out.append((dataclasses.replace(anchor, name=name) if name != anchor.name else anchor, tensors))
    return out
