"""The stack cache under faults: a full disk while building leaves no cache file and says how to go on without one;
a build killed before its sidecar (or a damaged matrix) is rebuilt, never read; stale temp files are cleaned."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

import lcsc.checkpoints.stack as stack_mod
from lcsc.atomic import atomic_path
from lcsc.checkpoints import CheckpointStack
from lcsc.errors import DiskFullError
from tests.faults import enospc, leave_temp, temp_files


def _cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_full_disk_while_writing_the_matrix(ckpt_dir: Path, monkeypatch) -> None:
    real, rows = stack_mod.numpy_view, []

    def view(row):  # rows 1-2 reach the file, then the disk is full
        rows.append(row)
        if len(rows) == 3:
            raise enospc()
        return real(row)

    monkeypatch.setattr(stack_mod, "numpy_view", view)
    with pytest.raises(DiskFullError) as info:
        CheckpointStack.open(ckpt_dir, progress=False)
    msg = str(info.value)
    assert msg.startswith(str(ckpt_dir / ".lcsc-cache")) and "no space left on device" in msg and "--no-cache" in msg
    assert not (ckpt_dir / ".lcsc-cache").exists()  # no cache file, and no empty cache folder (issue 36)
    monkeypatch.undo()
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    assert stack.cache_state == "built"
    assert torch.equal(stack.matrix, CheckpointStack.open(ckpt_dir, cache=False, progress=False).matrix)


def test_full_disk_while_writing_the_sidecar_leaves_no_orphan_matrix(ckpt_dir: Path, monkeypatch) -> None:
    def full_write_json(target, obj):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b'{"version": 1, "pa')
            raise enospc()

    monkeypatch.setattr("lcsc.checkpoints.cache.write_json", full_write_json)
    with pytest.raises(DiskFullError, match=r"stack-\w+\.json: cannot write: no space left on device"):
        CheckpointStack.open(ckpt_dir, progress=False)
    assert not (ckpt_dir / ".lcsc-cache").exists()  # the published matrix went, and then its folder


@pytest.mark.parametrize("damage", ["no sidecar", "truncated matrix"])
def test_a_killed_or_damaged_cache_is_rebuilt_not_read(ckpt_dir: Path, damage: str) -> None:
    good = CheckpointStack.open(ckpt_dir, progress=False)
    expected = good.matrix.clone()
    matrix, sidecar = good.cache_path, good.cache_path.with_suffix(".json")
    del good
    if damage == "no sidecar":  # a kill after the matrix was renamed into place, before the sidecar
        sidecar.unlink()
        leave_temp(sidecar)
    else:  # only a failing disk does this (every write is atomic); the cache must still not be trusted
        with open(matrix, "r+b") as fh:
            fh.truncate(matrix.stat().st_size // 2)
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    assert stack.cache_state == "built" and torch.equal(stack.matrix, expected)
    assert CheckpointStack.open(ckpt_dir, progress=False).cache_state == "reused"


def test_stale_temp_files_are_removed_by_the_next_build(ckpt_dir: Path) -> None:
    cache = ckpt_dir / ".lcsc-cache"
    stale = leave_temp(cache / "stack-0123456789abcdef01234567.npy")
    live = leave_temp(cache / "stack-fedcba9876543210fedcba98.npy")  # another process may be writing this one
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    CheckpointStack.open(ckpt_dir, progress=False)
    assert temp_files(cache) == [live]
