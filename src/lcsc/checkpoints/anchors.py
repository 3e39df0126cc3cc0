"""Anchors: named extra rows of a checkpoint stack (EMA weights, other files) after the window's checkpoints.

A stack's rows are its K_w window checkpoints in step order, then its A anchors in the order given; coefficients
have K = K_w + A entries. Anchors live in RAM as an A×P float32 matrix, never in the window's memory-mapped cache.
Each is checked against the window's layout (same keys, shapes and dtypes) and for finite values, and refused when
its content hash repeats a window checkpoint's or another anchor's (a duplicate row adds nothing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from lcsc.atomic import sha256_file
from lcsc.checkpoints.layout import Layout
from lcsc.checkpoints.reader import load_checkpoint, read_step, weights_file
from lcsc.errors import CheckpointError

__all__ = ["ANCHOR_KINDS", "Anchor", "anchor_from_file", "anchor_rows", "state_dict_sha256"]

ANCHOR_KINDS = ("file", "ema", "ema-start", "phema", "state")


@dataclass(frozen=True)
class Anchor:
    """One anchor row: its unique ``name`` (``"ema:hl-640"``, ``"phema:0.05"``, a file's stem), content hash,
    where it came from (``source``: a path or a description), its ``kind`` (one of :data:`ANCHOR_KINDS`), the
    CLI ``spec`` that made it, the training ``step`` it stands for and its per-iteration ``ema_rate`` when known."""

    name: str
    sha256: str
    source: str
    kind: str = "state"
    spec: str | None = None
    step: int | None = None
    ema_rate: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The anchor as a JSON object (fields that are None are left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Anchor:
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(obj.get("sha256"), str):
            raise CheckpointError(f"anchor {obj!r}: expected an object with string 'name' and 'sha256'")
        step, rate = obj.get("step"), obj.get("ema_rate")
        return cls(name=obj["name"], sha256=obj["sha256"], source=str(obj.get("source", "")),
                   kind=str(obj.get("kind", "state")), spec=obj.get("spec"),
                   step=None if step is None else int(step), ema_rate=None if rate is None else float(rate))


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's safetensors serialisation (no metadata): the hash its file would have when written
    with ``safetensors.torch.save_file(state_dict, path)``; used for anchors that are not files."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    return hashlib.sha256(save(tensors)).hexdigest()


def anchor_from_file(path: str | Path, *, name: str | None = None, kind: str = "file", spec: str | None = None,
                     step: int | None = None, key: str | None = None) -> tuple[Anchor, dict[str, torch.Tensor]]:
    """Read a checkpoint file (or diffusers / ``checkpoint-N`` folder) safely as an anchor: its tensors, and an
    :class:`Anchor` hashed exactly as a window checkpoint is (SHA-256 of its weights file). ``step`` and
    ``ema_rate`` come from the file's metadata unless ``step`` is given."""
    path = Path(path)
    ckpt = load_checkpoint(path, key=key)
    if step is None and any(k in ckpt.metadata for k in ("step", "global_step", "iteration", "iter")):
        found, origin = read_step(path, ckpt.metadata)
        step = found if origin == "metadata" else None
    rate = ckpt.metadata.get("ema_rate")
    try:
        ema_rate = None if rate is None else float(rate)
    except (TypeError, ValueError):
        ema_rate = None
    anchor = Anchor(name=name or path.stem, sha256=sha256_file(weights_file(path)), source=str(path.resolve()),
                    kind=kind, spec=spec, step=step, ema_rate=ema_rate)
    return anchor, ckpt.tensors


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _check_layout(anchor: Anchor, tensors: dict[str, torch.Tensor], layout: Layout, reference: Path) -> None:
    """One CheckpointError naming the anchor and what differs from the window's layout."""
    where = f"anchor {anchor.name!r} ({anchor.source})"
    names = {s.name for s in layout.specs}
    missing, extra = sorted(names - tensors.keys()), sorted(tensors.keys() - names)
    if missing or extra:
        parts = [f"missing {len(missing)} key(s) such as {missing[:3]}"] if missing else []
        parts += [f"{len(extra)} extra key(s) such as {extra[:3]}"] if extra else []
        raise CheckpointError(f"{where}: another architecture than the window ({reference.name}): " + "; ".join(parts))
    for spec in layout.specs:
        t = tensors[spec.name]
        if tuple(t.shape) != spec.shape:
            raise CheckpointError(f"{where}: another architecture than the window ({reference.name}): tensor "
                                  f"{spec.name!r} has shape {tuple(t.shape)} vs {spec.shape}")
        if _dtype_name(t) != spec.dtype:
            raise CheckpointError(f"{where}: tensor {spec.name!r} has dtype {_dtype_name(t)} vs {spec.dtype} in the "
                                  f"window ({reference.name})")
    for spec in layout.float_specs:
        t = tensors[spec.name]
        if not bool(torch.isfinite(t).all()):
            n_nan, n_inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            raise CheckpointError(f"{where}: contains NaN/Inf in tensor {spec.name!r} ({n_nan} NaN, {n_inf} Inf)")


def _check_unique(anchors: Sequence[Anchor], window_paths: Sequence[Path], window_hashes: Sequence[str]) -> None:
    """Refuse a repeated anchor name, and an anchor whose content hash equals another row's."""
    seen_names: set[str] = set()
    seen: dict[str, str] = {h: f"window checkpoint {p}" for p, h in zip(window_paths, window_hashes)}
    for a in anchors:
        if a.name in seen_names:
            raise CheckpointError(f"anchor name {a.name!r} is given twice; anchor names must be unique in a stack")
        seen_names.add(a.name)
        if a.sha256 in seen:
            raise CheckpointError(f"anchor {a.name!r} ({a.source}) has the same content (sha256 {a.sha256[:12]}…) as "
                                  f"{seen[a.sha256]}; a duplicate row adds nothing")
        seen[a.sha256] = f"anchor {a.name!r} ({a.source})"


def _as_anchor(item: Anchor | str, value: Any, key: str | None) -> tuple[Anchor, dict[str, torch.Tensor]]:
    """An (anchor, tensors) pair from a name or Anchor and a state dict or file path."""
    if isinstance(value, (str, Path)):
        if isinstance(item, Anchor):
            return item, load_checkpoint(Path(value), key=key).tensors
        return anchor_from_file(value, name=str(item), key=key)
    if not isinstance(value, dict):
        raise CheckpointError(f"anchor {item if isinstance(item, str) else item.name!r}: expected a state dict or a "
                              f"checkpoint path, got a {type(value).__name__}")
    if isinstance(item, Anchor):
        return item, value
    bad = [k for k, v in value.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"anchor {item!r}: entry {bad[0]!r} is not a tensor")
    return Anchor(name=str(item), sha256=state_dict_sha256(value), source="<state dict>", kind="state"), value


def anchor_rows(
    items: Sequence[tuple[Anchor | str, Any]], layout: Layout, window_paths: Sequence[Path],
    window_hashes: Sequence[str], *, key: str | None = None,
) -> tuple[list[Anchor], torch.Tensor | None]:
    """Validate anchors against a window (its layout, files and hashes) and flatten them: (anchors, A×P float32
    matrix, or None when there are none). Items pair an :class:`Anchor` or a name with a state dict or a path."""
    anchors: list[Anchor] = []
    rows: list[torch.Tensor] = []
    reference = Path(window_paths[-1])
    for item, value in items:
        anchor, tensors = _as_anchor(item, value, key)
        _check_layout(anchor, tensors, layout, reference)
        anchors.append(anchor)
        _check_unique(anchors, window_paths, window_hashes)
        rows.append(layout.flatten(tensors, out=torch.empty(layout.numel, dtype=torch.float32)))
        del tensors
    return anchors, (torch.stack(rows) if rows else None)
