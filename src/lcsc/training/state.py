"""Training state (weights, optimiser, EMAs, RNG streams, step) saved atomically and loaded without pickled code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lcsc.atomic import atomic_path
from lcsc.errors import CheckpointError

__all__ = ["STATE_NAME", "save_train_state", "load_train_state"]

STATE_NAME = "train-state.pt"


def save_train_state(path: str | Path, **state: Any) -> Path:
    """``torch.save`` of plain tensors/containers (optimizer state dicts, generator states) via a temp file."""
    path = Path(path)
    state = {k: (json.dumps(v) if k == "config" else v) for k, v in state.items()}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)
    return path


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Load with ``weights_only=True`` (no code can run); a damaged file is a :class:`CheckpointError`."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure as a bad file
        raise CheckpointError(f"{path}: cannot read training state ({exc})") from exc
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path}: not an lcsc training state")
    state["config"] = json.loads(state["config"])
    return state
