"""The on-disk stack cache: a .npy K×P matrix (memory-mapped on open) plus a JSON sidecar and extra tensors."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lcsc.atomic import atomic_path, write_json
from lcsc.checkpoints.build import file_fingerprint

__all__ = [
    "CACHE_VERSION",
    "CacheFiles",
    "cache_files",
    "default_cache_dir",
    "load_cached",
    "map_matrix",
    "remove_stale",
    "write_sidecar",
]

CACHE_VERSION = 1


@dataclass(frozen=True)
class CacheFiles:
    """The three files of one cached stack; ``sidecar`` is written last and marks the cache complete."""

    matrix: Path
    sidecar: Path
    extras: Path
    source_id: str

    def exists(self) -> bool:
        return self.sidecar.is_file() and self.matrix.is_file()

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in (self.matrix, self.sidecar, self.extras) if p.is_file())


def _writable(folder: Path) -> bool:
    probe = folder if folder.exists() else folder.parent
    return os.access(probe, os.W_OK)


def default_cache_dir(paths: list[Path]) -> Path:
    """``<checkpoint folder>/.lcsc-cache`` when writable, else ``$LCSC_CACHE_DIR`` or ``~/.cache/lcsc/stacks``."""
    parent = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    local = parent / ".lcsc-cache"
    if _writable(local):
        return local
    return Path(os.environ.get("LCSC_CACHE_DIR") or Path.home() / ".cache" / "lcsc" / "stacks")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def cache_files(paths: list[Path], key: str | None, storage: str, cache_dir: Path) -> CacheFiles:
    """Cache file names for this exact checkpoint set (paths, sizes, mtimes), key and storage dtype."""
    prints = sorted(file_fingerprint(p) for p in paths)
    source_id = _digest([[p[0] for p in prints], key, storage])[:16]
    name = "stack-" + _digest([CACHE_VERSION, prints, key, storage])[:24]
    return CacheFiles(
        matrix=cache_dir / f"{name}.npy",
        sidecar=cache_dir / f"{name}.json",
        extras=cache_dir / f"{name}.extras.safetensors",
        source_id=source_id,
    )


def write_sidecar(files: CacheFiles, info: dict[str, Any], extras: dict[str, torch.Tensor]) -> None:
    """Publish extras, then the sidecar (the matrix must already be in place)."""
    if extras:
        with atomic_path(files.extras) as tmp:
            save_file({k: v.contiguous() for k, v in extras.items()}, str(tmp))
    write_json(files.sidecar, {"version": CACHE_VERSION, "source_id": files.source_id, **info})


def map_matrix(path: Path, storage: torch.dtype) -> torch.Tensor:
    """Memory-map a cached K×P .npy matrix as a tensor (copy-on-write: the file is never modified)."""
    matrix = torch.from_numpy(np.load(path, mmap_mode="c"))
    return matrix.view(torch.bfloat16) if storage == torch.bfloat16 else matrix


def load_cached(
    files: CacheFiles, storage: torch.dtype
) -> tuple[dict[str, Any], torch.Tensor, dict[str, torch.Tensor]]:
    """Open a complete cache: (sidecar info, memory-mapped K×P matrix, extras)."""
    info = json.loads(files.sidecar.read_text())
    matrix = map_matrix(files.matrix, storage)
    extras = load_file(str(files.extras)) if files.extras.is_file() else {}
    return info, matrix, extras


def remove_stale(files: CacheFiles) -> list[Path]:
    """Delete other caches of the same checkpoint files, key and storage (older file versions); return them."""
    removed = []
    for sidecar in files.sidecar.parent.glob("stack-*.json"):
        if sidecar == files.sidecar:
            continue
        with contextlib.suppress(OSError, ValueError):
            if json.loads(sidecar.read_text()).get("source_id") == files.source_id:
                stem = sidecar.name[: -len(".json")]
                for path in (
                    sidecar,
                    sidecar.with_name(stem + ".npy"),
                    sidecar.with_name(stem + ".extras.safetensors"),
                ):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed.append(path)
    return removed
