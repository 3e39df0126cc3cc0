"""A checkpoint's tensor names, shapes and dtypes without its tensor data (what ``lcsc inspect`` reads).

What each format needs (:func:`header_source` names it for one weights file):

- **safetensors** (plain files, diffusers folders, accelerate's ``model.safetensors``, LoRA files, peft
  ``adapter_model.safetensors``): the 8-byte header length and the JSON header, nothing after it. The header is
  checked as strictly as ``safetensors`` does (length, JSON, dtypes, shapes, contiguous data offsets that end exactly
  at the end of the file), so a truncated file or a bad header is refused here too.
- **torch zip files** (``.pt/.pth/.bin/.ckpt`` that ``torch.save`` writes since PyTorch 1.6): the shapes are pickled,
  so the zip's central directory, its small records and ``data.pkl`` are read; ``data.pkl`` goes through PyTorch's
  weights-only unpickler (a pickle that needs objects beyond tensors and plain containers is refused) onto the meta
  device with the file memory-mapped, so the tensor storages are never read. A truncated file has lost its central
  directory and is refused.
- **legacy torch files** (not zip; ``_use_new_zipfile_serialization=False``): their storages follow the pickle in one
  stream, so these are read whole (still weights-only).

Tensors come back on the meta device: shapes and dtypes, no values (a NaN/Inf check needs the data, and waits for
the stack's build).
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import torch

from lcsc.errors import CheckpointError

__all__ = ["LEGACY_TORCH", "SAFETENSORS_HEADER", "TORCH_ZIP_PICKLE", "header_source", "safetensors_header",
           "safetensors_meta"]

SAFETENSORS_HEADER = "safetensors header"
TORCH_ZIP_PICKLE = "data.pkl of a torch zip file"
LEGACY_TORCH = "whole file (legacy torch format)"
_MAX_HEADER = 100_000_000  # the safetensors library's own limit
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
           "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64",
           "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool", "C64": "complex64"}
Header = dict[str, tuple[tuple[int, ...], torch.dtype]]


def header_source(file: str | Path) -> str:
    """What reading ``file``'s names, shapes and dtypes takes: :data:`SAFETENSORS_HEADER`, :data:`TORCH_ZIP_PICKLE`
    or :data:`LEGACY_TORCH` (the zip check reads the end-of-archive record only)."""
    file = Path(file)
    if file.suffix == ".safetensors":
        return SAFETENSORS_HEADER
    return TORCH_ZIP_PICKLE if zipfile.is_zipfile(file) else LEGACY_TORCH


def _read_header_bytes(file: Path) -> tuple[bytes, int]:
    """The JSON header's bytes and the size of the data region after it."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{file}: not a safetensors file ({size} bytes; the header length alone "
                                      "takes 8)")
            n = int.from_bytes(head, "little")
            if n > _MAX_HEADER:
                raise CheckpointError(f"{file}: not a safetensors file (its header length says {n:,} bytes, over "
                                      f"the {_MAX_HEADER:,} bytes safetensors allows)")
            if n > size - 8:
                raise CheckpointError(f"{file}: truncated or not a safetensors file (its header length says "
                                      f"{n:,} bytes, the file holds {size - 8:,} after it)")
            return fh.read(n), size - 8 - n
    except OSError as exc:
        raise CheckpointError(f"{file}: cannot read ({exc.strerror or exc})") from None


def _entry(file: Path, name: str, entry: Any) -> tuple[tuple[int, ...], torch.dtype, int, int]:
    """(shape, dtype, begin, end) of one header entry, each checked."""
    where = f"{file}: bad safetensors header: tensor {name!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise CheckpointError(f"{where} lacks dtype, shape or data_offsets")
    dtype = getattr(torch, _DTYPES.get(entry["dtype"], "-"), None) if isinstance(entry["dtype"], str) else None
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"{where} has dtype {entry['dtype']!r}, which PyTorch cannot hold")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise CheckpointError(f"{where} has shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise CheckpointError(f"{where} has data_offsets {offsets!r}")
    nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
    if offsets[1] - offsets[0] != nbytes:
        raise CheckpointError(f"{where}: its {entry['dtype']} {tuple(shape)} takes {nbytes:,} bytes but its "
                              f"data_offsets {offsets} span {offsets[1] - offsets[0]:,}")
    return tuple(shape), dtype, offsets[0], offsets[1]


def _parse(file: Path, raw: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: bad safetensors header (not JSON: {exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: bad safetensors header (a JSON {type(header).__name__}, not an object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{file}: bad safetensors header (__metadata__ is not an object of strings)")
    return header, metadata


def safetensors_header(file: str | Path) -> tuple[Header, dict[str, str]]:
    """``({name: (shape, dtype)}, metadata)`` of a safetensors file, from its header only. A file shorter than its
    header says, a header that is not JSON, an unknown dtype, or data offsets that overlap, leave gaps or do not end
    exactly at the end of the file is one :class:`CheckpointError` naming the file."""
    file = Path(file)
    raw, data_size = _read_header_bytes(file)
    header, metadata = _parse(file, raw)
    entries = {name: _entry(file, name, entry) for name, entry in header.items()}
    end = 0
    for name, (_, _, begin, stop) in sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != end:
            raise CheckpointError(f"{file}: bad safetensors header: tensor {name!r} starts at data byte {begin:,}, "
                                  f"expected {end:,} (overlapping or missing data)")
        end = stop
    if end > data_size:
        raise CheckpointError(f"{file}: truncated: its header describes {end:,} bytes of tensor data, the file holds "
                              f"{data_size:,}")
    if end < data_size:
        raise CheckpointError(f"{file}: not a valid safetensors file: {data_size - end:,} bytes after the last "
                              "tensor's data")
    return {name: (shape, dtype) for name, (shape, dtype, _, _) in entries.items()}, metadata


def safetensors_meta(file: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors on the meta device (names, shapes, dtypes; no data read) and its metadata."""
    header, metadata = safetensors_header(file)
    return {name: torch.empty(shape, dtype=dtype, device="meta") for name, (shape, dtype) in header.items()}, metadata
