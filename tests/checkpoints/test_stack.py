from __future__ import annotations

import os
import weakref
from pathlib import Path

import pytest
import torch

import lcsc.checkpoints.build as build_mod
from lcsc.checkpoints import CheckpointStack, save_checkpoint
from tests.conftest import make_states, write_states


def test_round_trip_every_checkpoint(ckpt_dir: Path, states) -> None:
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    assert (stack.K, stack.steps) == (5, [100, 200, 300, 400, 500])
    for k, sd in enumerate(states):
        got = stack.checkpoint(k)
        assert got.keys() == sd.keys()
        assert all(torch.equal(got[n], sd[n]) for n in sd)
    assert torch.equal(stack.flatten(states[2]), stack.matrix[2])


def test_cache_is_built_once_then_memory_mapped(ckpt_dir: Path, monkeypatch) -> None:
    first = CheckpointStack.open(ckpt_dir, progress=False)
    assert first.cache_state == "built" and first.cache_path.is_file()

    def boom(*a, **k):
        raise AssertionError("a reused cache must not read checkpoints again")

    monkeypatch.setattr(build_mod, "load_checkpoint", boom)
    second = CheckpointStack.open(ckpt_dir, progress=False)
    assert second.cache_state == "reused"
    assert torch.equal(first.matrix, second.matrix)
    assert not second.matrix.is_contiguous() or second.matrix.untyped_storage().nbytes() >= second.nbytes
    assert second.summary()["cache_disk_bytes"] >= second.nbytes


def test_cache_invalidated_when_a_file_changes(ckpt_dir: Path) -> None:
    old = CheckpointStack.open(ckpt_dir, progress=False)
    new_states = make_states(1, seed=9)
    path = save_checkpoint(ckpt_dir / "ckpt-000000300.safetensors", new_states[0], step=300)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    assert stack.cache_state == "built"
    assert torch.equal(stack.checkpoint(2)["3.weight"], new_states[0]["3.weight"])
    assert not old.cache_path.exists(), "the stale cache of the same files is removed"
    assert len(list((ckpt_dir / ".lcsc-cache").glob("stack-*.npy"))) == 1


def test_no_cache_and_cache_dir(ckpt_dir: Path, tmp_path: Path) -> None:
    ram = CheckpointStack.open(ckpt_dir, cache=False, progress=False)
    assert ram.cache_path is None and not (ckpt_dir / ".lcsc-cache").exists()
    elsewhere = CheckpointStack.open(ckpt_dir, cache_dir=tmp_path / "cache", progress=False)
    assert elsewhere.cache_path.parent == tmp_path / "cache"
    assert torch.equal(ram.matrix, elsewhere.matrix)


@pytest.mark.parametrize("storage,tol", [("float16", 1e-3), ("bfloat16", 1e-2)])
def test_16bit_storage(ckpt_dir: Path, storage: str, tol: float) -> None:
    full = CheckpointStack.open(ckpt_dir, cache=False, progress=False)
    for cache in (False, True, True):
        half = CheckpointStack.open(ckpt_dir, storage=storage, cache=cache, progress=False)
        assert str(half.storage_dtype) == f"torch.{storage}" and half.nbytes * 2 == full.nbytes
        rel = (half.matrix.float() - full.matrix).abs().max() / full.matrix.abs().max()
        assert float(rel) < tol


def test_build_holds_one_checkpoint_at_a_time(tmp_path: Path, monkeypatch) -> None:
    write_states(tmp_path, make_states(6))
    alive: list[weakref.ref] = []
    peak = []
    real = build_mod.load_checkpoint

    def tracking(path, key=None):
        peak.append(sum(r() is not None for r in alive))
        ck = real(path, key=key)
        alive.append(weakref.ref(ck.tensors["3.weight"]))
        return ck

    monkeypatch.setattr(build_mod, "load_checkpoint", tracking)
    CheckpointStack.open(tmp_path, progress=False)
    assert max(peak) == 0, f"checkpoints still alive when the next was loaded: {peak}"


def test_summary_reports_order_and_disk(ckpt_dir: Path) -> None:
    s = CheckpointStack.open(ckpt_dir, progress=False).summary()
    assert [o["step"] for o in s["order"]] == s["steps"] == [100, 200, 300, 400, 500]
    assert {o["from"] for o in s["order"]} == {"metadata"}
    assert s["checkpoints_disk_bytes"] > 0 and s["non_float_tensors"] == ["1.num_batches_tracked"]
