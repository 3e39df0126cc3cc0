"""Training under faults: a full disk while recording, then a kill while saving the training state (weights,
optimiser, EMAs), then a resume that ends exactly where an uninterrupted run does; the loss log never keeps a torn
line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lcsc.data import load_digits_data
from lcsc.errors import DiskFullError
from lcsc.models import ModelConfig
from lcsc.training import RecordConfig, TrainConfig, Trainer, train
from lcsc.training.log import LossLog, read_log
from lcsc.training.state import STATE_NAME, load_train_state
from tests.faults import Killed, enospc, fail_save_file, fail_writes_to, safetensors_enospc, temp_files


def _config() -> TrainConfig:
    return TrainConfig(model=ModelConfig(kind="dm", channels=8), iterations=12, batch_size=16, seed=3,
                       record=RecordConfig(window=6, interval=3), ema_half_lives=(2.0,), log_every=2, save_every=5,
                       sample_count=0)


@pytest.fixture(scope="module")
def digits():
    return load_digits_data()


def _kill_state_save_at(monkeypatch, step: int) -> None:
    """``torch.save`` of the training state at ``step`` writes a few bytes, then the process is killed."""
    real = torch.save

    def save(obj, f, *args, **kw):
        if isinstance(obj, dict) and obj.get("step") == step:
            f.write(b"PK\x03\x04 torn zip")
            raise Killed
        return real(obj, f, *args, **kw)

    monkeypatch.setattr(torch, "save", save)


def test_full_disk_then_kill_mid_state_save_then_resume(tmp_path: Path, digits, monkeypatch, one_thread) -> None:
    cfg, run = _config(), tmp_path / "run"
    state = run / "state" / STATE_NAME
    # 1. the disk fills at the raw checkpoint of step 9; the last saved state is step 5
    fail_save_file(monkeypatch, "ckpt-000000009", safetensors_enospc)
    with pytest.raises(DiskFullError, match=r"ckpt-000000009\.safetensors: cannot write: no space left on device"):
        Trainer(cfg, run, data=digits, progress=False).run()
    monkeypatch.undo()
    assert load_train_state(state)["step"] == 5 and temp_files(run) == []
    assert not (run / "windows/12/ckpt-000000009.safetensors").exists()
    assert [r["step"] for r in read_log(run / "log.jsonl")] == [2, 4, 6, 8]
    saved = state.read_bytes()
    # 2. resumed, then killed while writing the state of step 10: the state of step 5 stays, whole
    _kill_state_save_at(monkeypatch, 10)
    with pytest.raises(Killed):
        Trainer(cfg, run, data=digits, progress=False).run()
    monkeypatch.undo()
    assert state.read_bytes() == saved and temp_files(run) == []
    # 3. resumed again: it ends where an uninterrupted run ends
    resumed = Trainer(cfg, run, data=digits, progress=False)
    assert resumed.step == 5
    resumed.run()
    train(cfg, tmp_path / "full", data=digits, progress=False)
    for name in ("last.safetensors", "ema/hl-2/ema-000000012.safetensors", "windows/12/ckpt-000000009.safetensors"):
        a, b = load_file(tmp_path / "full" / name), load_file(run / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert [r["step"] for r in read_log(run / "log.jsonl")] == list(range(2, 13, 2))
    full_state, run_state = load_train_state(tmp_path / "full/state" / STATE_NAME), load_train_state(state)
    assert all(torch.equal(full_state["ema"][k], run_state["ema"][k]) for k in full_state["ema"])


def test_loss_log_full_disk_leaves_no_torn_line(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "log.jsonl"
    log = LossLog(path)
    log.write({"step": 2, "loss": 1.0})
    before = path.read_bytes()
    fail_writes_to(path, enospc, monkeypatch)
    with pytest.raises(DiskFullError, match=r"log\.jsonl: cannot write: no space left on device"):
        log.write({"step": 4, "loss": 0.9})
    monkeypatch.undo()
    log.close()
    assert path.read_bytes() == before


def test_loss_log_drops_a_torn_last_line_on_resume(tmp_path: Path) -> None:
    """A kill mid-append leaves a line without its newline; the resumed log drops it and appends cleanly."""
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 2, "loss": 1.0}\n{"step": 4, "loss": 0.9}\n{"step": 6, "lo')
    log = LossLog(path, resume_step=5)
    log.write({"step": 6, "loss": 0.8})
    log.close()
    assert [r["step"] for r in read_log(path)] == [2, 4, 6]
    assert path.read_text().count("\n") == 3 and temp_files(tmp_path) == []

