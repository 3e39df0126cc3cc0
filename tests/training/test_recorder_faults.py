"""CheckpointRecorder under faults: a full disk at a raw checkpoint, EMA or power-EMA snapshot keeps every earlier
file byte-identical and leaves nothing part-written; a killed write's temp file is skipped by readers and removed by
the next recorder; a step shared by two windows is replaced atomically."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lcsc.checkpoints import CheckpointStack
from lcsc.errors import DiskFullError
from lcsc.merge.posthoc import PosthocEMA
from lcsc.training import CheckpointRecorder
from tests.faults import enospc, fail_save_file, hashes, leave_temp, safetensors_enospc, temp_files


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _recorder(run: Path, model: torch.nn.Module, **kw) -> CheckpointRecorder:
    base = dict(total_steps=20, window=10, interval=5, ends=[10, 20], ema_half_lives=[2], ema_steps=[15],
                phema_sigma_rels=[0.1], phema_every=5)
    return CheckpointRecorder(run, model, **(base | kw))


def _drive(rec: CheckpointRecorder, model: torch.nn.Module, first: int, last: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(first)
    for step in range(first, last + 1):
        loss = model(torch.randn(16, 4, generator=gen)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.step(step)


@pytest.mark.parametrize("final", ["windows/20/ckpt-000000015.safetensors", "ema/hl-2/ema-000000015.safetensors",
                                   "phema/sigma-0.100/phema-000000015.safetensors"], ids=["raw", "ema", "phema"])
def test_full_disk_mid_snapshot_keeps_every_earlier_file(tmp_path: Path, monkeypatch, final: str) -> None:
    model = _net()
    rec = _recorder(tmp_path, model)
    _drive(rec, model, 1, 14)
    before = hashes(tmp_path)
    assert len(before) == 6  # raw 5 and 10, EMA 0 (the first window's start) and 10, power EMA 5 and 10
    hit = fail_save_file(monkeypatch, Path(final).name, safetensors_enospc)
    with pytest.raises(DiskFullError) as info:
        _drive(rec, model, 15, 20)
    assert hit and str(info.value).startswith(f"{tmp_path / final}: cannot write: no space left on device")
    after = hashes(tmp_path)
    assert {k: after.get(k) for k in before} == before, "an earlier file changed"
    assert final not in after and temp_files(tmp_path) == []
    for new in set(after) - set(before):  # written before the failing one in the same step: complete
        assert load_file(tmp_path / new).keys() == model.state_dict().keys()


def test_a_killed_write_leaves_a_temp_that_readers_skip_and_the_next_run_removes(tmp_path: Path) -> None:
    model = _net()
    _drive(_recorder(tmp_path, model), model, 1, 14)
    before = hashes(tmp_path)
    stray = [leave_temp(tmp_path / f, ".safetensors") for f in (
        "windows/10/ckpt-000000010.safetensors", "windows/20/ckpt-000000015.safetensors",
        "ema/hl-2/ema-000000015.safetensors", "phema/sigma-0.100/phema-000000015.safetensors", "last.safetensors")]
    stray.append(leave_temp(tmp_path / "state" / "train-state.pt", ".pt"))
    stack = CheckpointStack.open(tmp_path / "windows/10", cache=False, progress=False)
    assert stack.steps == [5, 10]
    assert PosthocEMA.open(tmp_path).steps == [5, 10]
    rec = _recorder(tmp_path, model)  # the next run on this folder
    assert sorted(rec.removed_temps) == sorted(stray)
    assert temp_files(tmp_path) == [] and hashes(tmp_path) == before


def test_a_shared_step_is_replaced_atomically_when_copying_fails(tmp_path: Path, monkeypatch) -> None:
    """Overlapping windows share a step by hard link (or a copy where links are refused): a rewrite that fails
    keeps the previous file under the second window's name (it used to be unlinked first)."""
    model = _net()
    kw = dict(total_steps=40, window=20, interval=5, ends=[30, 40], ema_half_lives=[], ema_steps=[],
              phema_sigma_rels=[])
    _drive(_recorder(tmp_path, model, **kw), model, 1, 30)
    shared = tmp_path / "windows/40/ckpt-000000030.safetensors"
    before = hashes(tmp_path)
    rec = _recorder(tmp_path, model, **kw)  # e.g. a resumed run recording step 30 again

    def no_link(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def full_copy(src, dst, **kw):
        Path(dst).write_bytes(Path(src).read_bytes()[:50])
        raise enospc()

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr("shutil.copyfile", full_copy)
    with pytest.raises(DiskFullError, match=f"^{shared}: cannot write: no space left on device"):
        rec.step(30)
    assert hashes(tmp_path)[str(shared.relative_to(tmp_path))] == before[str(shared.relative_to(tmp_path))]
    assert temp_files(tmp_path) == []
    monkeypatch.undo()
    rec.step(30)
    assert shared.stat().st_ino == (tmp_path / "windows/30/ckpt-000000030.safetensors").stat().st_ino
