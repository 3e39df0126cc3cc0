"""Stream K checkpoints, one at a time, into the rows of a K×P matrix (a file or RAM), validating as it goes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from lcsc.atomic import sha256_file
from lcsc.checkpoints.layout import Layout
from lcsc.checkpoints.lora import adapter_config_file, is_adapter_folder
from lcsc.checkpoints.reader import load_checkpoint, read_step, weights_file
from lcsc.errors import CheckpointError
from lcsc.progress import track

__all__ = ["STORAGE_DTYPES", "BuildResult", "build_rows", "file_fingerprint", "npy_header", "numpy_view"]

STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_NUMPY_STORAGE = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.int16}


@dataclass
class BuildResult:
    """What reading the files produced, in file-read order (``row`` k holds ``paths[k]``)."""

    paths: list[Path]
    layout: Layout
    steps: list[int]
    step_origins: list[str]
    metadata: list[dict[str, Any]]
    hashes: list[str]
    others: list[dict[str, torch.Tensor]] = field(default_factory=list)


def numpy_view(t: torch.Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor in its storage dtype (bfloat16 is viewed as int16)."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy()
    return t.numpy()


def npy_header(fh: BinaryIO, storage: torch.dtype, shape: tuple[int, int]) -> None:
    """Write the .npy header for a C-ordered matrix of ``shape`` in ``storage`` dtype."""
    descr = np.lib.format.dtype_to_descr(np.dtype(_NUMPY_STORAGE[storage]))
    np.lib.format.write_array_header_2_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})


def _check_finite(path: Path, layout: Layout, row: torch.Tensor, storage: torch.dtype) -> None:
    if bool(torch.isfinite(row).all()):
        return
    for spec in layout.float_specs:
        part = row[spec.offset : spec.offset + spec.numel]
        if not bool(torch.isfinite(part).all()):
            n_nan, n_inf = int(torch.isnan(part).sum()), int(torch.isinf(part).sum())
            hint = f" (overflows {storage} storage?)" if storage != torch.float32 else ""
            raise CheckpointError(
                f"{path}: tensor {spec.name!r} has {n_nan} NaN and {n_inf} Inf values{hint}"
            )


def build_rows(
    paths: list[Path],
    allocate: Callable[[Layout], Callable[[int, torch.Tensor], None]],
    *,
    key: str | None,
    storage: torch.dtype,
    progress: bool = True,
) -> BuildResult:
    """Load each checkpoint in turn, validate it against the first, and hand its flat row to a row writer.

    ``allocate(layout)`` is called once the first file fixes P and returns the writer ``write_row(k, row)``.
    Only one checkpoint's tensors are alive at a time.
    """
    write_row: Callable[[int, torch.Tensor], None] | None = None
    layout: Layout | None = None
    result = BuildResult(paths=list(paths), layout=None, steps=[], step_origins=[], metadata=[], hashes=[])  # type: ignore[arg-type]
    row: torch.Tensor | None = None
    for k, path in enumerate(track(paths, desc="reading checkpoints", unit="checkpoints", progress=progress)):
        ckpt = load_checkpoint(path, key=key)
        if layout is None:
            layout = result.layout = Layout.from_tensors(ckpt.tensors)
            row = torch.empty(layout.numel, dtype=storage)
            write_row = allocate(layout)
        else:
            layout.validate(path, ckpt.tensors, paths[0])
        layout.flatten(ckpt.tensors, out=row)
        _check_finite(path, layout, row, storage)
        write_row(k, row)
        step, origin = read_step(path, ckpt.metadata)
        result.steps.append(step)
        result.step_origins.append(origin)
        result.metadata.append(
            {str(a): (b if isinstance(b, (int, float, bool)) else str(b)) for a, b in ckpt.metadata.items()}
        )
        result.hashes.append(sha256_file(weights_file(path)))
        result.others.append({s.name: ckpt.tensors[s.name].clone() for s in layout.other_specs})
        del ckpt
    return result


def file_fingerprint(path: Path) -> list[Any]:
    """(absolute path, size, mtime_ns) of a checkpoint's weights file: cheap staleness check for the cache. A LoRA
    adapter's ``adapter_config.json`` (its α and r scale ΔW) is fingerprinted too."""
    source = weights_file(path)
    st = os.stat(source)
    out = [str(source.resolve()), st.st_size, st.st_mtime_ns]
    if is_adapter_folder(path):
        config = adapter_config_file(path)
        out += [str(config.resolve()), config.stat().st_size, config.stat().st_mtime_ns]
    return out
