"""``survey`` (what ``lcsc inspect`` shows) from headers only: the stack's own K, P, dtypes and order for every
format, the cache's state as the next open finds it, no tensor data read and nothing written (issue 36)."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from lcsc.checkpoints import CheckpointStack
from lcsc.checkpoints import survey as survey_module
from lcsc.checkpoints.survey import survey
from tests.checkpoints.lora_files_helpers import SHAPES, write_diffusers, write_kohya
from tests.conftest import make_states
from tests.faults import tree_snapshot
from tests.merge.lora_helpers import make_tricky_adapters

SAME = ("K", "P", "steps", "order", "tensors", "non_float_tensors", "dtypes", "storage", "stack_bytes",
        "checkpoints_disk_bytes")
RANKS = [dict.fromkeys(SHAPES, 2), dict.fromkeys(SHAPES, 3)]


def _pt(root: Path) -> None:
    """Wrapped, prefixed state dicts in torch zip files, the step in the wrapper."""
    for k, sd in enumerate(make_states(3)):
        torch.save({"model": {f"module.{n}": t for n, t in sd.items()}, "step": 10 * (k + 1)}, root / f"m-{k}.pt")


def _legacy(root: Path) -> None:
    for k, sd in enumerate(make_states(2)):
        torch.save(sd, root / f"old-{k + 1}.pth", _use_new_zipfile_serialization=False)


def _diffusers_run(root: Path) -> None:
    """accelerate's checkpoint-N/ folders with a diffusers UNet folder each."""
    for k, sd in enumerate(make_states(2)):
        (root / f"checkpoint-{k + 1}" / "unet").mkdir(parents=True)
        save_file(sd, str(root / f"checkpoint-{k + 1}" / "unet" / "diffusion_pytorch_model.safetensors"))
        (root / f"checkpoint-{k + 1}" / "random_states_0.pkl").write_bytes(b"never unpickled")


def _kohya(root: Path) -> None:
    for k in range(2):
        write_kohya(root / f"style-{k + 1:06d}.safetensors", RANKS[k], k, alphas=dict.fromkeys(SHAPES, 1.0),
                    metadata={"ss_steps": str(100 * (k + 1))})


def _diffusers_lora(root: Path) -> None:
    for k in range(2):
        write_diffusers(root / f"checkpoint-{k + 1}" / "pytorch_lora_weights.safetensors", RANKS[k], k, style="down")


FORMATS = {"torch-zip": _pt, "legacy-torch": _legacy, "diffusers-run": _diffusers_run, "kohya": _kohya,
           "diffusers-lora": _diffusers_lora, "peft": make_tricky_adapters}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_same_numbers_as_the_stack(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / fmt
    root.mkdir()
    FORMATS[fmt](root)
    before = tree_snapshot(tmp_path)
    got = survey(root, progress=False)
    assert tree_snapshot(tmp_path) == before  # wrote nothing: no cache folder, no temp file
    want = CheckpointStack.open(root, progress=False, cache=False).summary()
    assert {k: got[k] for k in SAME} == {k: want[k] for k in SAME}
    assert got["tensor_data_read"] == (fmt == "legacy-torch")


def test_cache_state_follows_the_files(ckpt_dir: Path) -> None:
    assert survey(ckpt_dir, progress=False)["cache_state"] == "none"
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    got = survey(ckpt_dir, progress=False)
    assert got["cache_state"] == "current" and got["cache_path"] == str(stack.cache_path)
    assert got["cache_disk_bytes"] > stack.nbytes and got["cache_free_at"] == str(stack.cache_path.parent)
    assert survey(ckpt_dir, storage="bfloat16", progress=False)["cache_state"] == "none"  # one cache per storage
    assert survey(ckpt_dir, cache=False, progress=False)["cache_state"] == "not used"
    first = sorted(ckpt_dir.glob("*.safetensors"))[0]
    os.utime(first, ns=(time.time_ns(), time.time_ns() + 10**9))  # a rewritten file: the cache is of the old one
    got = survey(ckpt_dir, progress=False)
    assert got["cache_state"] == "stale" and got["stale_cache_bytes"] > stack.nbytes and got["cache_disk_bytes"] == 0
    assert CheckpointStack.open(ckpt_dir, progress=False).cache_state == "built"  # as the survey said


def test_truncated_cache_matrix_is_unreadable(ckpt_dir: Path) -> None:
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    stack.cache_path.write_bytes(stack.cache_path.read_bytes()[:-8])
    assert survey(ckpt_dir, progress=False)["cache_state"] == "unreadable"
    assert CheckpointStack.open(ckpt_dir, progress=False).cache_state == "built"  # as the survey said


def _sparse_checkpoints(folder: Path, gib: int) -> None:
    """Two safetensors files of ``gib`` GiB each whose data region is a hole: reading it would take minutes."""
    folder.mkdir()
    n = gib * 2**30 // 4
    for step in (1, 2):
        raw = (f'{{"__metadata__":{{"step":"{step}"}},"w":{{"dtype":"F32","shape":[{n}],'
               f'"data_offsets":[0,{4 * n}]}}}}').encode()
        path = folder / f"big-{step}.safetensors"
        path.write_bytes(struct.pack("<Q", len(raw)) + raw)
        os.truncate(path, 8 + len(raw) + 4 * n)


def _rchar() -> int:
    """Bytes this process has read through read syscalls so far."""
    return int(dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())["rchar"])


@pytest.mark.skipif(not Path("/proc/self/io").is_file(), reason="counts bytes read with /proc/self/io (Linux)")
def test_no_tensor_data_is_read(tmp_path: Path, ckpt_dir: Path, monkeypatch) -> None:
    """2 × 64 GiB (sparse) inspect in moments, reading a few KiB; a stack that big does not fit: a warning."""
    _sparse_checkpoints(tmp_path / "big", 64)
    survey(ckpt_dir, progress=False)  # lazy imports, read once
    start = _rchar()
    got = survey(tmp_path / "big", progress=False)
    assert _rchar() - start < 2**20 and got["P"] == 16 * 2**30 and got["stack_bytes"] == 2 * 64 * 2**30
    monkeypatch.setattr(survey_module.shutil, "disk_usage", lambda p: SimpleNamespace(free=2**30))
    warning, = survey(tmp_path / "big", progress=False)["warnings"]
    assert "the float32 stack (128.0 GiB) does not fit in the 1.0 GiB free at" in warning and "--storage bfloat16" in warning
