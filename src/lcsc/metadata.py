"""A checkpoint file's safetensors metadata: reading it, and the stable hash of the model config it holds.

The file format (:mod:`lcsc.checkpoints.format`) writes them and :mod:`lcsc.models` reads a model's config back:
a foundation module, so that models need not import checkpoints (a layer above them).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from safetensors import safe_open

from lcsc.errors import CheckpointError

__all__ = ["config_hash", "read_metadata"]


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a JSON-able model config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of a checkpoint file (a clear error for a missing or unreadable file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
