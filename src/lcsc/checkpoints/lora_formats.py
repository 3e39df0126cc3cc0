"""Which LoRA format a checkpoint is in, and reading any of them as exact ΔW.

Three formats: peft adapter folders (``adapter_model.safetensors`` + ``adapter_config.json``, :mod:`.lora`), and the
files trainers write (:mod:`.lora_files`): diffusers' ``pytorch_lora_weights.safetensors`` (alone, or in a folder
such as the ``checkpoint-N/`` of diffusers' LoRA training scripts) and kohya-ss ``.safetensors``. A run is one format:
LoRA checkpoints never mix with full checkpoints or with another LoRA format.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lcsc.checkpoints.lora import LoraAdapter, adapter_weights_file, is_adapter_folder, read_adapter
from lcsc.checkpoints.lora_files import DIFFUSERS, KOHYA, LORA_WEIGHTS, PEFT, lora_file_format, read_lora_file
from lcsc.checkpoints.training_folders import is_training_checkpoint
from lcsc.errors import CheckpointError

__all__ = ["DIFFUSERS", "KOHYA", "PEFT", "check_one_format", "is_lora_checkpoint", "lora_kind", "lora_weights_file",
           "read_lora"]

_LABELS = {PEFT: "a peft LoRA adapter folder", DIFFUSERS: "a diffusers LoRA file", KOHYA: "a kohya LoRA file"}


def lora_weights_file(path: str | Path) -> Path | None:
    """The file holding a LoRA checkpoint's factors: a peft folder's ``adapter_model.*``, a diffusers / kohya LoRA
    file itself, or the ``pytorch_lora_weights.safetensors`` of a folder holding one and no ``checkpoint-N/``
    folders (a training run's output folder yields its checkpoints instead); None for anything else."""
    path = Path(path)
    if not path.is_dir():
        return path if lora_file_format(path) is not None else None
    if (adapter := adapter_weights_file(path)) is not None:
        return adapter
    weights = path / LORA_WEIGHTS
    if weights.is_file() and not any(is_training_checkpoint(c) for c in path.iterdir()):
        return weights
    return None


def lora_kind(path: str | Path) -> str | None:
    """``"peft"``, ``"diffusers"`` or ``"kohya"`` for a LoRA checkpoint (file or folder), None for anything else."""
    if is_adapter_folder(Path(path)):
        return PEFT
    weights = lora_weights_file(path)
    if weights is None:
        return None
    return lora_file_format(weights) or DIFFUSERS  # a folder's pytorch_lora_weights.safetensors: read as diffusers'


def is_lora_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a LoRA checkpoint of any format (see :func:`lora_kind`)."""
    return lora_kind(path) is not None


def read_lora(path: str | Path, meta: bool = False) -> LoraAdapter:
    """Read one LoRA checkpoint of any format as validated factors and scales (``.delta_state()`` gives ΔW);
    ``meta``: from the weights file's header only (tensors on the meta device: shapes, no values)."""
    path = Path(path)
    if is_adapter_folder(path):
        return read_adapter(path, meta)
    weights = lora_weights_file(path)
    if weights is None:
        raise CheckpointError(f"{path}: not a LoRA checkpoint (a peft adapter folder, a diffusers or kohya LoRA "
                              f".safetensors file, or a folder holding {LORA_WEIGHTS})")
    return read_lora_file(path, weights, meta)


def _shown(path: Path) -> str:
    return f"{path}/" if path.is_dir() else str(path)


def check_one_format(paths: Iterable[str | Path]) -> None:
    """Raise naming two of ``paths`` unless they are all full checkpoints, or all LoRA checkpoints of one format."""
    kinds = [(Path(p), lora_kind(p)) for p in paths]
    loras = [(p, kind) for p, kind in kinds if kind is not None]
    if not loras:
        return
    if len(loras) < len(kinds):
        other = next(p for p, kind in kinds if kind is None)
        what = "a LoRA adapter folder" if loras[0][1] == PEFT else _LABELS[loras[0][1]]
        raise CheckpointError(f"{loras[0][0]} is {what} but {other} is not; combine LoRA checkpoints or full "
                              "checkpoints, not both")
    first, kind = loras[0]
    for path, other in loras[1:]:
        if other != kind:
            raise CheckpointError(f"{_shown(first)} is {_LABELS[kind]}, {_shown(path)} is {_LABELS[other]}: one "
                                  "LoRA format per run")
