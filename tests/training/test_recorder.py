"""CheckpointRecorder: exactly the planned steps, atomic writes, disk budget, EMA snapshots, plain-loop use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lcsc.checkpoints import CheckpointStack
from lcsc.errors import ConfigError
from lcsc.models import ModelConfig, build_model, load_model
from lcsc.training import CheckpointRecorder, MultiEMA, RecordPlan


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _drive(rec: CheckpointRecorder, model: torch.nn.Module, steps: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        loss = model(torch.randn(16, 4, generator=gen)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.step(step)


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


def _meta(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()


def test_one_window_writes_exactly_the_planned_steps(tmp_path):
    model = _net()
    rec = CheckpointRecorder(tmp_path, model, total_steps=100, window=30, interval=7, ema_half_lives=[5],
                             batch_size=16)
    _drive(rec, model, 100)
    want = {f"windows/100/ckpt-{s:09d}.safetensors" for s in (72, 79, 86, 93, 100)} | \
        {"ema/hl-5/ema-000000100.safetensors", "ema/hl-5/ema-000000065.safetensors"}  # end, and start (72 − 7)
    assert _files(tmp_path) == want
    meta = _meta(tmp_path / "windows/100/ckpt-000000093.safetensors")
    assert meta["step"] == "93" and meta["images_seen"] == str(93 * 16)
    ema_meta = _meta(tmp_path / "ema/hl-5/ema-000000100.safetensors")
    assert float(ema_meta["ema_rate"]) == pytest.approx(0.5 ** (1 / 5))


def test_several_overlapping_windows(tmp_path):
    model = _net()
    rec = CheckpointRecorder(tmp_path, model, total_steps=60, window=20, interval=5, ends=[30, 40, 60],
                             ema_rates=[0.9])
    _drive(rec, model, 60)
    plan = RecordPlan(60, 20, 5, (30, 40, 60))
    assert plan.steps() == {30: [15, 20, 25, 30], 40: [25, 30, 35, 40], 60: [45, 50, 55, 60]}
    want = {f"windows/{e}/ckpt-{s:09d}.safetensors" for e, steps in plan.steps().items() for s in steps}
    want |= {f"ema/rate-0.9/ema-{e:09d}.safetensors" for e in (30, 40, 60)}
    want |= {f"ema/rate-0.9/ema-{s:09d}.safetensors" for s in (10, 20, 40)}  # window starts (first step − 5)
    assert _files(tmp_path) == want
    # a step shared by two windows is the same weights in both
    a = CheckpointStack.open(tmp_path / "windows/30", cache=False)
    b = CheckpointStack.open(tmp_path / "windows/40", cache=False)
    assert a.steps == [15, 20, 25, 30] and b.steps == [25, 30, 35, 40]
    for k, v in a.checkpoint(2).items():
        assert torch.equal(v, b.checkpoint(0)[k])
    assert (tmp_path / "windows/30/ckpt-000000025.safetensors").stat().st_ino == \
        (tmp_path / "windows/40/ckpt-000000025.safetensors").stat().st_ino  # hard link, no second copy


def test_ema_snapshot_matches_multi_ema(tmp_path):
    model = _net()
    ema = MultiEMA(model, half_lives=[3])
    rec = CheckpointRecorder(tmp_path, model, total_steps=10, window=1, interval=1, ema=ema)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(1, 11):
        model(torch.ones(2, 4)).sum().backward()
        opt.step()
        opt.zero_grad()
        ema.update()
        rec.step(step)
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "ema/hl-3/ema-000000010.safetensors")
    for k, v in ema.state_dict_for("hl-3").items():
        assert torch.equal(saved[k], v)
    assert not torch.equal(saved["0.weight"], model.state_dict()["0.weight"])


def test_crash_mid_write_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    import safetensors.torch as st

    model = _net()
    rec = CheckpointRecorder(tmp_path, model, total_steps=20, window=10, interval=5)
    real_save = st.save_file
    calls = {"n": 0}

    def dying_save(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:  # the process "dies" halfway through writing the second checkpoint
            Path(filename).write_bytes(b"\x00" * 100)
            raise KeyboardInterrupt
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr("lcsc.checkpoints.format.save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        _drive(rec, model, 20)
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["ckpt-000000015.safetensors"]
    from safetensors.torch import load_file

    assert set(load_file(tmp_path / "windows/20/ckpt-000000015.safetensors")) == set(model.state_dict())


def test_disk_budget_refusal_says_how_much(tmp_path):
    model = _net()
    with pytest.raises(ConfigError, match=r"needs .* but the disk budget is"):
        CheckpointRecorder(tmp_path, model, total_steps=1000, window=1000, interval=1, disk_budget=10_000)
    assert not any(tmp_path.iterdir())


def test_float16_storage_and_bad_dtype(tmp_path):
    model = _net()
    rec = CheckpointRecorder(tmp_path, model, total_steps=3, window=1, interval=1, storage_dtype="float16")
    rec.step(3)
    with safe_open(str(tmp_path / "windows/3/ckpt-000000003.safetensors"), framework="pt") as fh:
        assert fh.get_tensor("0.weight").dtype == torch.float16
    with pytest.raises(ConfigError, match="storage dtype"):
        CheckpointRecorder(tmp_path, model, total_steps=3, storage_dtype="int8")


def test_bad_plan_is_a_clear_error():
    with pytest.raises(ConfigError, match="outside the run"):
        RecordPlan(100, 10, 1, (150,))
    with pytest.raises(ConfigError, match="interval"):
        RecordPlan(100, 10, 0)


def test_lcsc_model_metadata_rebuilds_the_model(tmp_path):
    config = ModelConfig(kind="cm", channels=8)
    model = build_model(config)
    rec = CheckpointRecorder(tmp_path, model, total_steps=1, window=1, interval=1)
    rec.step(1)
    path = tmp_path / "windows/1/ckpt-000000001.safetensors"
    assert json.loads(_meta(path)["config"]) == config.to_dict()
    rebuilt = load_model(path)
    x, s = torch.randn(3, 1, 8, 8), torch.tensor([0.1, 1.0, 10.0])
    assert torch.equal(rebuilt(x, s), model.eval()(x, s))


def readme_recorder_example() -> str:
    """The guide's plain-PyTorch recorder example (docs/guide/training.md: the python block that constructs a
    CheckpointRecorder and steps it)."""
    readme = (Path(__file__).parents[2] / "docs" / "guide" / "training.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    found = [b for b in blocks if "CheckpointRecorder(" in b and "rec.step(step)" in b]
    assert len(found) == 1, "docs/guide/training.md must hold exactly one plain-PyTorch recorder example"
    return found[0]


def test_readme_plain_pytorch_example(tmp_path, monkeypatch):
    code = readme_recorder_example()
    assert '"runs/my-run"' in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "training.md", "exec"), {})  # noqa: S102 - our own guide snippet
    tmp_path = tmp_path / "runs/my-run"
    stack = CheckpointStack.open(tmp_path / "windows/300", cache=False)
    assert stack.steps == list(range(210, 301, 10))
    assert (tmp_path / "ema/hl-20/ema-000000300.safetensors").exists()


def test_extra_ema_snapshot_steps(tmp_path):
    model = _net()
    rec = CheckpointRecorder(tmp_path, model, total_steps=40, window=5, interval=5, ema_half_lives=[4],
                             ema_steps=[10, 20])
    _drive(rec, model, 40)
    assert sorted(p.name for p in (tmp_path / "ema/hl-4").iterdir()) == [
        "ema-000000010.safetensors", "ema-000000020.safetensors", "ema-000000035.safetensors",
        "ema-000000040.safetensors"]  # 35: the window's start
    with pytest.raises(ConfigError, match="EMA snapshot steps"):
        CheckpointRecorder(tmp_path, model, total_steps=40, ema_steps=[41])


def test_window_start_snapshots_continue_to_the_end_snapshot_exactly(tmp_path):
    """Interval 1: EMA(end) = γ^K·EMA(start) + Σ (1 − γ)γ^(K−j)·θ_j over the window's checkpoints, to float tolerance."""
    from lcsc.search.space import ema_continuation

    model = _net()
    rec = CheckpointRecorder(tmp_path, model, total_steps=50, window=12, interval=1, ema_half_lives=[3, 9])
    _drive(rec, model, 50)
    stack = CheckpointStack.open(tmp_path / "windows/50", cache=False)
    assert stack.steps == list(range(39, 51))
    for name, half_life in (("hl-3", 3), ("hl-9", 9)):
        start = load_file(str(tmp_path / f"ema/{name}/ema-000000038.safetensors"))
        end = load_file(str(tmp_path / f"ema/{name}/ema-000000050.safetensors"))
        a_window, a_start = ema_continuation(stack.K, 0.5 ** (1 / half_life), 1)
        for key, want in end.items():
            got = a_start * start[key].double() + sum(a * stack.checkpoint(k)[key].double()
                                                      for k, a in enumerate(a_window))
            torch.testing.assert_close(got, want.double(), rtol=1e-5, atol=1e-6)


def test_a_window_from_step_zero_gets_the_initial_weights(tmp_path):
    model = _net()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    rec = CheckpointRecorder(tmp_path, model, total_steps=20, window=20, interval=5, ema_half_lives=[4])
    _drive(rec, model, 20)
    snap = load_file(str(tmp_path / "ema/hl-4/ema-000000000.safetensors"))
    assert all(torch.equal(snap[k], v) for k, v in initial.items())
    # a recorder made again on the same folder (a resume) does not overwrite it with trained weights
    CheckpointRecorder(tmp_path, model, total_steps=20, window=20, interval=5, ema_half_lives=[4])
    snap = load_file(str(tmp_path / "ema/hl-4/ema-000000000.safetensors"))
    assert all(torch.equal(snap[k], v) for k, v in initial.items())


def test_disk_check_names_the_window_start_share(tmp_path):
    model = _net()
    with pytest.raises(ConfigError, match="of it window-start EMA snapshots"):
        CheckpointRecorder(tmp_path, model, total_steps=100, window=30, interval=7, ema_half_lives=[5],
                           disk_budget=10)
    off = CheckpointRecorder(tmp_path / "b", model, total_steps=100, window=30, interval=7, ema_half_lives=[5],
                             window_starts=False)
    on = CheckpointRecorder(tmp_path / "c", model, total_steps=100, window=30, interval=7, ema_half_lives=[5])
    assert on.bytes_needed() - off.bytes_needed() == on.start_snapshot_bytes() > 0
