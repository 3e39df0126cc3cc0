"""Reading one checkpoint file safely: safetensors, weights-only PyTorch pickles, diffusers model folders, and the
``checkpoint-N/`` folders of accelerate's ``save_state`` (diffusers training loops)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from lcsc.checkpoints.headers import safetensors_meta
from lcsc.checkpoints.lora import LORA_DELTA_KEY
from lcsc.checkpoints.lora_formats import check_one_format, is_lora_checkpoint, lora_weights_file, read_lora
from lcsc.checkpoints.safe_load import safe_torch_load
from lcsc.checkpoints.training_folders import (
    is_state_file,
    is_training_checkpoint,
    step_from_folder,
    training_checkpoint_weights,
)
from lcsc.errors import CheckpointError, first_line

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "DIFFUSERS_WEIGHTS",
    "LoadedCheckpoint",
    "discover_checkpoints",
    "load_checkpoint",
    "read_step",
    "weights_file",
    "checkpoint_interval",
]

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
_PREFIXES = ("module.", "_orig_mod.")
_WRAPPER_KEYS = ("state_dict", "model", "module", "net", "ema", "model_ema", "ema_model", "params")
_STEP_KEYS = ("step", "global_step", "iteration", "iter")
_IGNORED_DIRS = {".lcsc-cache", "__pycache__"}


@dataclass
class LoadedCheckpoint:
    """One checkpoint's tensors (prefixes stripped) and its scalar metadata."""

    path: Path
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]


def weights_file(path: Path) -> Path:
    """The file that holds a checkpoint's weights: the file itself, a diffusers folder's weights file, or the model
    weights of a training ``checkpoint-N/`` folder."""
    if path.is_dir():
        if (adapter := lora_weights_file(path)) is not None:  # a LoRA folder (peft, or pytorch_lora_weights)
            return adapter
        for candidate in (path / DIFFUSERS_WEIGHTS, path / "unet" / DIFFUSERS_WEIGHTS):
            if candidate.is_file():
                return candidate
        if is_training_checkpoint(path):
            return weights_file(training_checkpoint_weights(path))
        raise CheckpointError(f"{path}: folder has no {DIFFUSERS_WEIGHTS} (not a diffusers model folder)")
    return path


def _is_diffusers_folder(path: Path) -> bool:
    return (path / DIFFUSERS_WEIGHTS).is_file() or (path / "unet" / DIFFUSERS_WEIGHTS).is_file()


def discover_checkpoints(paths_or_dir: str | Path | list[str | Path]) -> list[Path]:
    """Expand a folder (or a list of files/folders) into checkpoint paths.

    A folder holding ``checkpoint-N/`` folders (a diffusers / accelerate training run) yields exactly those, each one
    checkpoint; otherwise a folder yields its checkpoint files (by suffix; accelerate's training-state files such as
    ``optimizer.bin`` are skipped) and its diffusers sub-folders. A folder that is itself a diffusers model folder or
    a ``checkpoint-N/`` folder counts as one checkpoint.
    """
    items = [paths_or_dir] if isinstance(paths_or_dir, (str, Path)) else list(paths_or_dir)
    if not items:
        raise CheckpointError("no checkpoint paths given")
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise CheckpointError(f"{path}: no such file or folder")
        if path.is_file() and is_state_file(path):
            raise CheckpointError(f"{path}: accelerate training state (a pickle), not model weights; never loaded")
        if path.is_file() or is_training_checkpoint(path) or is_lora_checkpoint(path):
            weights_file(path)  # a training folder with no (or several) model weights: say so now
            found.append(path)
            continue
        found += _folder_checkpoints(path)
    if not found:
        raise CheckpointError(
            f"{', '.join(str(p) for p in items)}: no checkpoints found "
            f"(looked for {', '.join(CHECKPOINT_SUFFIXES)} files, diffusers folders and checkpoint-N folders)"
        )
    check_one_format(found)  # LoRA checkpoints (their exact ΔW) of one format only, never with full checkpoints
    return found


def _folder_checkpoints(path: Path) -> list[Path]:
    """The checkpoints inside a folder that is not itself one checkpoint (see :func:`discover_checkpoints`)."""
    children = [c for c in sorted(path.iterdir()) if c.name not in _IGNORED_DIRS and not c.name.startswith(".")]
    runs = [c for c in children if is_training_checkpoint(c)]
    for run in runs:
        weights_file(run)
    if runs:
        return runs  # a training run: its final pipeline (unet/ beside them) has no step and may be the EMA
    if _is_diffusers_folder(path):
        return [path]
    return [c for c in children if (c.is_file() and c.suffix in CHECKPOINT_SUFFIXES and not is_state_file(c))
            or (c.is_dir() and (_is_diffusers_folder(c) or is_lora_checkpoint(c)))]


def _strip_prefixes(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                changed = True
    return name


def _clean_tensors(path: Path, tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        clean = _strip_prefixes(name)
        if clean in out:
            raise CheckpointError(
                f"{path}: keys {name!r} and another both become {clean!r} after prefix stripping"
            )
        out[clean] = value
    if not out:
        raise CheckpointError(f"{path}: holds no tensors")
    return out


def _under_key(path: Path, names: list[str], key: str | None) -> dict[str, str]:
    """``{name to use: name stored}`` of a safetensors file's tensors; ``key`` selects a name prefix (dropped)."""
    if not key:
        return {n: n for n in names}
    prefix = key.rstrip(".") + "."
    selected = {n[len(prefix) :]: n for n in names if n.startswith(prefix)}
    if not selected:
        raise CheckpointError(f"{path}: no tensors under key {key!r}")
    return selected


def _load_safetensors(path: Path, key: str | None, meta: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if meta:  # the header only (lcsc.checkpoints.headers)
        tensors, metadata = safetensors_meta(path)
        return {n: tensors[stored] for n, stored in _under_key(path, list(tensors), key).items()}, dict(metadata)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {n: fh.get_tensor(stored) for n, stored in _under_key(path, list(fh.keys()), key).items()}
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from None
    return tensors, metadata


def _torch_load(path: Path, meta: bool = False) -> Any:
    """A weights-only ``torch.load`` (``meta``: tensors on the meta device; a zip file's storages are not read)."""
    try:
        return safe_torch_load(path, mmap=True, meta=meta)
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        # mmap=True fails on legacy (non-zip) files: retry without it before calling the file corrupt.
        if "mmap" in str(exc) or "zip" in str(exc).lower():
            try:
                return safe_torch_load(path, meta=meta)
            except CheckpointError:
                raise
            except Exception as exc2:  # noqa: BLE001 - any failure here means the file is unusable
                raise CheckpointError(f"{path}: corrupt, truncated or not a PyTorch checkpoint "
                                      f"({first_line(exc2)})") from None
        raise CheckpointError(f"{path}: corrupt, truncated or not a PyTorch checkpoint ({first_line(exc)})") from None


def _unwrap(path: Path, obj: Any, key: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    metadata = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, (int, float, str, bool))}
    if key:
        node: Any = obj
        for part in key.split("/"):
            if not isinstance(node, dict) or part not in node:
                raise CheckpointError(
                    f"{path}: no entry {key!r} (top-level keys: {sorted(map(str, obj))[:12]})"
                )
            node = node[part]
        if not isinstance(node, dict):
            raise CheckpointError(f"{path}: entry {key!r} is a {type(node).__name__}, not a state dict")
        return node, metadata
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    wrapped = [k for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict) and obj[k]]
    if len(wrapped) == 1:
        return obj[wrapped[0]], metadata
    if len(wrapped) > 1:
        raise CheckpointError(
            f"{path}: holds several state dicts ({', '.join(wrapped)}); choose one with key=/--key"
        )
    raise CheckpointError(
        f"{path}: not a state dict and no known wrapper key ({', '.join(_WRAPPER_KEYS)}); "
        f"top-level keys: {sorted(map(str, obj))[:12]}"
    )


def load_checkpoint(path: str | Path, key: str | None = None, *, meta: bool = False) -> LoadedCheckpoint:
    """Load one checkpoint's tensors without running pickled code.

    ``key`` selects a wrapped state dict (``"ema"`` for ``{"ema": sd}``; ``"a/b"`` for nesting), or for
    safetensors a name prefix. ``meta=True`` reads no tensor data where the format allows (see
    :mod:`lcsc.checkpoints.headers`): the tensors come back on the meta device, with their names, shapes and dtypes.
    """
    path = Path(path)
    if is_lora_checkpoint(path):  # exact ΔW = s·B·A per adapted layer, keyed by the base weight's name
        if key:
            raise CheckpointError(f"{path}: key={key!r} (--key) does not apply to a LoRA checkpoint")
        adapter = read_lora(path, meta=meta)
        return LoadedCheckpoint(path, adapter.delta_state(), {**adapter.metadata, LORA_DELTA_KEY: "true"})
    source = weights_file(path)
    if source.suffix == ".safetensors":
        tensors, metadata = _load_safetensors(source, key, meta)
    elif source.suffix in CHECKPOINT_SUFFIXES:
        tensors, metadata = _unwrap(path, _torch_load(source, meta), key)
    else:
        raise CheckpointError(
            f"{path}: unknown checkpoint type (expected one of {', '.join(CHECKPOINT_SUFFIXES)})"
        )
    return LoadedCheckpoint(path=path, tensors=_clean_tensors(path, tensors), metadata=metadata)


def read_step(path: Path, metadata: dict[str, Any]) -> tuple[int, str]:
    """The training step of a checkpoint and where it came from: metadata first, then the file name."""
    for k in _STEP_KEYS:
        if k in metadata:
            try:
                return int(metadata[k]), "metadata"
            except (TypeError, ValueError):
                raise CheckpointError(
                    f"{path}: metadata {k}={metadata[k]!r} is not an integer step"
                ) from None
    folder_step = step_from_folder(path)
    if folder_step is not None:
        return folder_step, "filename"
    name = path.name if path.is_dir() else path.stem
    numbers = re.findall(r"\d+", name)
    if path.is_dir() and not numbers and path.name == "unet":
        numbers = re.findall(r"\d+", path.parent.name)
    if not numbers:
        raise CheckpointError(
            f"{path}: no training step in its metadata ({'/'.join(_STEP_KEYS)}) or file name"
        )
    return int(numbers[-1]), "filename"


def checkpoint_interval(steps: list[int]) -> int:
    """Iterations between checkpoints (the median step gap): the interval of a window's EMA profiles, and of the
    step before its first checkpoint (its start)."""
    gaps = np.diff(np.asarray(steps))
    return max(1, int(np.median(gaps))) if len(gaps) else 1
