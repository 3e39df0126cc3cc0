"""``torch.load`` that can never run code (``weights_only=True``) and refuses pickled objects in one clear line."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from lcsc.errors import CheckpointError

__all__ = ["safe_torch_load", "pickle_refusal"]

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def pickle_refusal(path: str | Path, exc: BaseException) -> CheckpointError:
    """The one-line error for a file whose unpickling needs arbitrary objects (named when PyTorch names one)."""
    found = _GLOBAL.search(str(exc))
    needs = f"a pickled object ({found.group(1)})" if found else "pickled objects beyond tensors and plain containers"
    return CheckpointError(
        f"{path}: refused: loading it needs {needs}, and loading that could run arbitrary code; convert it to "
        "safetensors where you trust it (torch.load(..., weights_only=False), then safetensors.torch.save_file of "
        "its state dict)")


def safe_torch_load(path: str | Path, *, mmap: bool = False, meta: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU (``meta``: on the meta device, shapes and dtypes only; with
    ``mmap`` a zip file's storages are then never read); a file that needs arbitrary objects raises
    :func:`pickle_refusal`'s error, with no PyTorch text or warning reaching the user. Other errors propagate."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="meta" if meta else "cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise pickle_refusal(path, exc) from None
