"""Training state (weights, optimiser, EMAs, RNG streams, step) saved atomically and loaded without pickled code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lcsc.atomic import atomic_path
from lcsc.checkpoints.safe_load import safe_torch_load
from lcsc.errors import CheckpointError, first_line

__all__ = ["restore_generator", "STATE_NAME", "save_train_state", "load_train_state"]

STATE_NAME = "train-state.pt"


def save_train_state(path: str | Path, **state: Any) -> Path:
    """``torch.save`` of plain tensors/containers (optimizer state dicts, generator states) via a temp file.

    The previous state file stays intact until the new one is complete, so a run killed or out of disk space
    mid-save resumes from the last complete state."""
    path = Path(path)
    state = {k: (json.dumps(v) if k == "config" else v) for k, v in state.items()}
    # A file object, not a path: then a full disk surfaces as the OSError(ENOSPC) torch.save's error was raised from.
    with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
    return path


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Load with ``weights_only=True`` (no code can run); a damaged file is a :class:`CheckpointError`."""
    path = Path(path)
    try:
        state = safe_torch_load(path)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure as a bad file
        first = first_line(exc)
        raise CheckpointError(f"{path}: cannot read training state ({first}); the file is damaged or not an lcsc "
                              "training state") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path}: not an lcsc training state")
    state["config"] = json.loads(state["config"])
    return state


def restore_generator(generator: torch.Generator, saved: torch.Tensor, source: str | Path) -> None:
    """Set ``generator``'s state from a saved state tensor: always passed as a CPU uint8 tensor, which is what both
    CPU and CUDA generators take; a state of another generator kind is a one-line :class:`CheckpointError`."""
    try:
        generator.set_state(saved.detach().to("cpu", torch.uint8))
    except (RuntimeError, TypeError, ValueError) as exc:
        first = first_line(exc)
        raise CheckpointError(f"{source}: the saved random-generator state does not fit this run's "
                              f"{generator.device.type} generator ({first}); resume on the device the run was "
                              "trained on (--device)") from None
