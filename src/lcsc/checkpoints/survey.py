"""What ``lcsc inspect`` reports about a checkpoint set, read from headers and metadata only: no tensor data is
read (beyond what a format needs for its shapes, see :mod:`lcsc.checkpoints.headers`) and nothing is written.

K, P and the dtypes follow the stack's own definitions (:class:`~lcsc.checkpoints.layout.Layout`, built from the
same tensors on the meta device): P counts the float parameters and buffers, integer buffers (``num_batches_tracked``)
stay outside the matrix and come from the last checkpoint. The cache's state is decided as
:meth:`CheckpointStack.open <lcsc.checkpoints.stack.CheckpointStack.open>` decides it (the files' paths, sizes and
mtimes name the cache), reading only the cache's JSON sidecar and its ``.npy`` header.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.checkpoints.build import STORAGE_DTYPES
from lcsc.checkpoints.cache import CACHE_VERSION, CacheFiles, cache_files, default_cache_dir
from lcsc.checkpoints.headers import LEGACY_TORCH, header_source
from lcsc.checkpoints.layout import Layout
from lcsc.checkpoints.lora import is_adapter_folder
from lcsc.checkpoints.reader import discover_checkpoints, load_checkpoint, read_step, weights_file
from lcsc.checkpoints.stack import _sorted_by_name_step
from lcsc.errors import CheckpointError
from lcsc.progress import stage, track
from lcsc.units import human_bytes

__all__ = ["survey", "cache_survey", "nearest_folder"]

_ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2}
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_all(paths: list[Path], key: str | None, progress: bool) -> tuple[Layout, list[tuple[int, str]], Counter]:
    """The layout (from the first checkpoint, every other validated against it), each checkpoint's (step, origin)
    and how many files needed what (:func:`~lcsc.checkpoints.headers.header_source`)."""
    layout: Layout | None = None
    steps, reads = [], Counter()
    for path in track(paths, desc="reading headers", unit="checkpoints", progress=progress):
        ckpt = load_checkpoint(path, key=key, meta=True)
        if layout is None:
            layout = Layout.from_tensors(ckpt.tensors)
        else:
            layout.validate(path, ckpt.tensors, paths[0])
        steps.append(read_step(path, ckpt.metadata))
        reads[header_source(weights_file(path))] += 1
        if is_adapter_folder(path):
            reads["adapter_config.json"] += 1
    return layout, steps, reads


def _order(paths: list[Path], steps: list[tuple[int, str]]) -> list[int]:
    """Indices in step order; two checkpoints with one step are the stack's error."""
    order = sorted(range(len(paths)), key=lambda k: steps[k][0])
    for a, b in zip(order, order[1:]):
        if steps[a][0] == steps[b][0]:
            raise CheckpointError(f"{paths[a]} and {paths[b]} both have step {steps[a][0]}")
    return order


def nearest_folder(path: Path) -> Path:
    """``path``, or its nearest existing parent (where a folder not made yet would go)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _cache_matches(files: CacheFiles, K: int, P: int, itemsize: int) -> bool:  # noqa: N803 - the paper's symbols
    """Whether the cache's sidecar is lcsc's and its matrix a complete K×P ``.npy`` (headers only)."""
    try:
        info = json.loads(files.sidecar.read_text())
        with open(files.matrix, "rb") as fh:
            read_header = _NPY_HEADERS[np.lib.format.read_magic(fh)]
            shape, _, _ = read_header(fh)
            start = fh.tell()
        return (isinstance(info, dict) and info.get("version") == CACHE_VERSION and tuple(shape) == (K, P)
                and files.matrix.stat().st_size == start + K * P * itemsize)
    except (OSError, ValueError, KeyError):
        return False


def _stale(files: CacheFiles) -> list[CacheFiles]:
    """Caches in the same folder of older versions of these files (same paths, key and storage)."""
    out = []
    for sidecar in sorted(files.sidecar.parent.glob("stack-*.json")) if files.sidecar.parent.is_dir() else []:
        if sidecar == files.sidecar:
            continue
        try:
            same = json.loads(sidecar.read_text()).get("source_id") == files.source_id
        except (OSError, ValueError, AttributeError):
            continue
        if same:
            stem = sidecar.name[: -len(".json")]
            out.append(CacheFiles(sidecar.with_name(stem + ".npy"), sidecar,
                                  sidecar.with_name(stem + ".extras.safetensors"), files.source_id))
    return out


def cache_survey(paths: list[Path], key: str | None, storage: str, cache_dir: str | Path | None, K: int,  # noqa: N803
                 P: int) -> dict[str, Any]:  # noqa: N803 - the paper's symbols
    """The stack cache of these checkpoints as :meth:`CheckpointStack.open` would find it: ``state`` (``current``:
    reused by the next open; ``stale``: only caches of older versions of the files, rebuilt and removed by the next
    open; ``unreadable``: rebuilt; ``none``), where it is or would go, its bytes, and the free space there."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(paths)
    files = cache_files(paths, key, storage, folder)
    stale = _stale(files)
    if files.exists():
        state = "current" if _cache_matches(files, K, P, _ITEMSIZE[storage]) else "unreadable"
    else:
        state = "stale" if stale else "none"
    where = nearest_folder(folder)
    return {"state": state, "path": str(files.matrix), "bytes": files.nbytes() if files.exists() else 0,
            "stale_bytes": sum(s.nbytes() for s in stale), "free_bytes": shutil.disk_usage(where).free,
            "free_at": str(where)}


def _dtypes(layout: Layout) -> dict[str, int]:
    dtypes: dict[str, int] = {}
    for spec in layout.specs:
        dtypes[spec.dtype] = dtypes.get(spec.dtype, 0) + spec.numel
    return dtypes


def _fit_warning(need: int, cache: dict[str, Any], storage: str, sizes: dict[str, int]) -> list[str]:
    """A warning when a cache that must still be written does not fit in the free space where it would go."""
    if cache["state"] == "current" or need <= cache["free_bytes"]:
        return []
    return [f"the {storage} stack ({human_bytes(need, binary=True)}) does not fit in the "
            f"{human_bytes(cache['free_bytes'], binary=True)} free at {cache['free_at']}: use --storage bfloat16 "
            f"({human_bytes(sizes['bfloat16'], binary=True)}), --cache-dir on another disk, or --no-cache"]


def survey(paths_or_dir: str | Path | list[str | Path], *, key: str | None = None, storage: str = "float32",
           cache: bool = True, cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """K, P, dtypes, step order, disk use, the stack's size in each storage dtype and the cache's state and free
    space, reading only headers and metadata and writing nothing. A checkpoint the stack would refuse for its file
    (unsafe pickle, truncated or bad header, keys/shapes/dtypes that differ, repeated steps) is refused here too;
    values (NaN/Inf, differing integer buffers) are checked only when the stack is built."""
    if storage not in STORAGE_DTYPES:
        raise CheckpointError(f"storage={storage!r}: expected one of {', '.join(STORAGE_DTYPES)}")
    paths = _sorted_by_name_step([p.resolve() for p in discover_checkpoints(paths_or_dir)])
    if len(paths) < 2:
        raise CheckpointError(f"{paths[0]}: only one checkpoint found; a linear combination needs at least two")
    with stage("checkpoint headers", f"reading {len(paths)} headers (no tensor data)"):
        layout, steps, reads = _read_all(paths, key, progress)
    order = _order(paths, steps)
    K, P = len(paths), layout.numel  # noqa: N806 - the paper's symbols
    sizes = {name: K * P * size for name, size in _ITEMSIZE.items()}
    cached = cache_survey(paths, key, storage, cache_dir, K, P) if cache else {
        "state": "not used", "path": None, "bytes": 0, "stale_bytes": 0, "free_bytes": None, "free_at": None}
    return {
        "K": K, "K_window": K, "P": P, "steps": [steps[k][0] for k in order],
        "order": [{"step": steps[k][0], "from": steps[k][1], "file": str(paths[k])} for k in order],
        "tensors": len(layout.specs), "non_float_tensors": [s.name for s in layout.other_specs],
        "dtypes": _dtypes(layout), "storage": storage, "stack_bytes": sizes[storage], "stack_bytes_by_storage": sizes,
        "checkpoints_disk_bytes": sum(os.stat(weights_file(p)).st_size for p in paths),
        "cache_path": cached["path"], "cache_state": cached["state"], "cache_disk_bytes": cached["bytes"],
        "stale_cache_bytes": cached["stale_bytes"], "cache_free_bytes": cached["free_bytes"],
        "cache_free_at": cached["free_at"], "read": dict(reads), "tensor_data_read": LEGACY_TORCH in reads,
        "warnings": _fit_warning(sizes[storage], cached, storage, sizes) if cache else [],
        "anchors": [], "anchor_bytes": 0, "notes": [],
    }  # fmt: skip

