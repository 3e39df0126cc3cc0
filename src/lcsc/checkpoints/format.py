"""lcsc's checkpoint file: safetensors with string metadata (step, images seen, EMA rate, model config + hash).

Reading the metadata and the config's hash live a layer down, in :mod:`lcsc.metadata` (models read them too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from lcsc.atomic import atomic_path
from lcsc.metadata import config_hash, read_metadata

__all__ = ["checkpoint_name", "config_hash", "save_checkpoint", "read_metadata"]


def checkpoint_name(step: int, prefix: str = "ckpt") -> str:
    """``ckpt-000123400.safetensors``: names sort by training progress."""
    return f"{prefix}-{step:09d}.safetensors"


def save_checkpoint(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    *,
    step: int,
    images_seen: int | None = None,
    ema_rate: float | None = None,
    config: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write a state dict atomically as safetensors with lcsc metadata; ``dtype`` casts float tensors."""
    tensors = {}
    for name, t in state_dict.items():
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous().clone()
    meta = {"format": "lcsc", "step": str(int(step))}
    if images_seen is not None:
        meta["images_seen"] = str(int(images_seen))
    if ema_rate is not None:
        meta["ema_rate"] = repr(float(ema_rate))
    if config is not None:
        meta["config"] = json.dumps(config, sort_keys=True)
        meta["config_hash"] = config_hash(config)
    meta.update(extra or {})
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path
