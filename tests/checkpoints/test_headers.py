"""Names, shapes and dtypes from headers only (issue 36): safetensors headers checked as strictly as safetensors
does, torch zip files through data.pkl on the meta device, and no tensor data read."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lcsc.checkpoints import load_checkpoint
from lcsc.checkpoints.headers import (
    LEGACY_TORCH,
    SAFETENSORS_HEADER,
    TORCH_ZIP_PICKLE,
    header_source,
    safetensors_header,
)
from lcsc.errors import CheckpointError

TENSORS = {"w": torch.randn(3, 4), "h": torch.randn(5).half(), "b": torch.randn(2, 2).bfloat16(),
           "n": torch.tensor(7), "m": torch.ones(3, dtype=torch.bool), "u": torch.arange(4, dtype=torch.uint8)}


def _write(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


class _Payload:
    def __reduce__(self):
        return os.system, ("echo payload ran",)


def test_header_matches_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    save_file(TENSORS, str(path), metadata={"step": "9"})
    header, metadata = safetensors_header(path)
    with safe_open(str(path), "pt") as fh:
        names = fh.keys()
        assert {k: (tuple(fh.get_tensor(k).shape), fh.get_tensor(k).dtype) for k in names} == header
    assert metadata == {"step": "9"} and header_source(path) == SAFETENSORS_HEADER


def test_meta_checkpoint_reads_no_values(tmp_path: Path) -> None:
    """The data region overwritten with garbage (NaN, noise): the header-only read gives the same tensors."""
    path = tmp_path / "ckpt-5.safetensors"
    save_file(TENSORS, str(path), metadata={"step": "5"})
    n = struct.unpack("<Q", path.read_bytes()[:8])[0]
    data = path.read_bytes()
    path.write_bytes(data[: 8 + n] + b"\xff" * (len(data) - 8 - n))
    ck = load_checkpoint(path, meta=True)
    assert {k: (t.shape, t.dtype, t.device.type) for k, t in ck.tensors.items()} == {
        k: (t.shape, t.dtype, "meta") for k, t in TENSORS.items()}
    assert ck.metadata == {"step": "5"}


@pytest.mark.parametrize(("damage", "match"), [
    (lambda d, n: d[: 8 + n + 10], r"truncated: its header describes \d+ bytes of tensor data, the file holds 10"),
    (lambda d, n: d[: 8 + n // 2], r"truncated or not a safetensors file \(its header length says"),
    (lambda d, n: d[:5], r"not a safetensors file \(5 bytes"),
    (lambda d, n: d + b"\0" * 4, r"4 bytes after the last tensor's data"),
    (lambda d, n: d[:8] + b"X" + d[9:], r"bad safetensors header \(not JSON"),
])
def test_damaged_files_are_refused_by_name(tmp_path: Path, damage, match: str) -> None:
    path = tmp_path / "x.safetensors"
    save_file(TENSORS, str(path))
    data = path.read_bytes()
    path.write_bytes(damage(data, struct.unpack("<Q", data[:8])[0]))
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, meta=True)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(("entry", "match"), [
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, "takes 8 bytes but its data_offsets"),
    ({"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}, "dtype 'Q9'"),
    ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, r"shape \[-2\]"),
    ({"dtype": "F32", "shape": [2]}, "lacks dtype, shape or data_offsets"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}, "starts at data byte 4, expected 0"),
])
def test_bad_header_entries(tmp_path: Path, entry: dict, match: str) -> None:
    path = _write(tmp_path / "x.safetensors", {"t": entry}, b"\0" * 8)
    with pytest.raises(CheckpointError, match=match):
        safetensors_header(path)


def test_torch_zip_reads_data_pkl_only(tmp_path: Path) -> None:
    """Shapes from data.pkl on the meta device; the storages' bytes (zeroed here, CRC no longer matching) unread."""
    path = tmp_path / "ckpt.pt"
    weights = torch.full((64, 64), 1.25)
    torch.save({"model": {"module.w": weights, "n": torch.tensor(3)}, "step": 11}, path)
    data = path.read_bytes()
    start = data.index(weights.numpy().tobytes()[:64])
    path.write_bytes(data[:start] + b"\0" * weights.nbytes + data[start + weights.nbytes:])
    ck = load_checkpoint(path, meta=True)
    assert {k: (tuple(t.shape), t.dtype, t.is_meta) for k, t in ck.tensors.items()} == {
        "w": ((64, 64), torch.float32, True), "n": ((), torch.int64, True)}
    assert ck.metadata == {"step": 11} and header_source(path) == TORCH_ZIP_PICKLE


def test_legacy_torch_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"w": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    assert header_source(path) == LEGACY_TORCH
    assert load_checkpoint(path, meta=True).tensors["w"].shape == (3,)


def test_pickles_with_a_payload_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": _Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused: loading it needs a pickled object \(posix.system"):
        load_checkpoint(path, meta=True)
    truncated = tmp_path / "cut.pt"
    torch.save({"w": torch.ones(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r"cut\.pt: corrupt, truncated or not a PyTorch checkpoint"):
        load_checkpoint(truncated, meta=True)
