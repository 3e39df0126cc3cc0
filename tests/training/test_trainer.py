"""Trainer: resume equals an uninterrupted run, --init-from, config changes refused, run-folder contents."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from lcsc.data import load_digits_data
from lcsc.errors import CheckpointError, ConfigError
from lcsc.models import ModelConfig
from lcsc.training import RecordConfig, TrainConfig, Trainer, train
from lcsc.training.log import read_log
from lcsc.training.state import restore_generator


@pytest.fixture(scope="module")
def digits():
    return load_digits_data()


def _config(kind: str = "dm", **kw) -> TrainConfig:
    base = dict(model=ModelConfig(kind=kind, channels=8), iterations=12, batch_size=16, seed=3,
                record=RecordConfig(window=6, interval=3), ema_half_lives=(2.0,), log_every=2, save_every=5,
                sample_count=0)
    return TrainConfig(**(base | kw))


def _crash_then_resume(cfg, run_dir, digits) -> Trainer:
    """Kill a run after step 8 (its last saved state is step 5), resume it to the end, return the resumed trainer."""

    def crash(record):
        if record["step"] == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, run_dir, data=digits, progress=False).run(on_log=crash)
    resumed = Trainer(cfg, run_dir, data=digits, progress=False)
    assert resumed.step == 5
    resumed.run()
    return resumed


@pytest.mark.parametrize("kind", ["dm", "cm"])
def test_resume_continues_the_same_trajectory(tmp_path, digits, kind):
    cfg = _config(kind)
    full = train(cfg, tmp_path / "full", data=digits, progress=False)
    _crash_then_resume(cfg, tmp_path / "part", digits)
    a, b = load_file(tmp_path / "full/last.safetensors"), load_file(tmp_path / "part/last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ema_a = load_file(tmp_path / "full/ema/hl-2/ema-000000012.safetensors")
    ema_b = load_file(tmp_path / "part/ema/hl-2/ema-000000012.safetensors")
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert [r["step"] for r in read_log(tmp_path / "part/log.jsonl")] == list(range(2, 13, 2))
    assert full.step == 12


def test_resume_refuses_a_changed_config(tmp_path, digits):
    train(_config(iterations=4), tmp_path, data=digits, progress=False)
    changed = _config(iterations=4, batch_size=8)
    with pytest.raises(ConfigError, match="batch_size"):
        Trainer(changed, tmp_path, data=digits, progress=False)


def test_init_from_starts_from_the_given_weights(tmp_path, digits):
    train(_config(iterations=3), tmp_path / "a", data=digits, progress=False)
    src = load_file(tmp_path / "a/last.safetensors")
    t = Trainer(_config(iterations=3, init_from=str(tmp_path / "a/last.safetensors"), seed=99), tmp_path / "b",
                data=digits, progress=False)
    assert all(torch.equal(t.model.state_dict()[k], v) for k, v in src.items())
    fresh = Trainer(_config(iterations=3, seed=99), tmp_path / "c", data=digits, progress=False)
    assert not torch.equal(fresh.model.state_dict()["net.conv_in.weight"], src["net.conv_in.weight"])


def test_init_from_wrong_shapes_is_a_clear_error(tmp_path, digits):
    train(_config(iterations=2), tmp_path / "a", data=digits, progress=False)
    wide = _config(iterations=2, init_from=str(tmp_path / "a/last.safetensors"))
    wide = dataclasses.replace(wide, model=ModelConfig(channels=16))
    with pytest.raises(CheckpointError, match="last.safetensors: weights do not fit"):
        Trainer(wide, tmp_path / "b", data=digits, progress=False)


def test_run_folder_contents(tmp_path, digits):
    cfg = _config(iterations=10, sample_count=4, record=RecordConfig(window=4, interval=2, ends=(6, 10)))
    res = train(cfg, tmp_path, data=digits, progress=False)
    assert sorted(p.name for p in (tmp_path / "windows/6").iterdir()) == ["ckpt-000000004.safetensors",
                                                                          "ckpt-000000006.safetensors"]
    assert sorted(p.name for p in (tmp_path / "ema/hl-2").iterdir()) == [  # window starts 2 and 6, ends 6 and 10
        "ema-000000002.safetensors", "ema-000000006.safetensors", "ema-000000010.safetensors"]
    saved = json.loads((tmp_path / "train_config.json").read_text())
    assert saved["model"]["in_channels"] == 1 and saved["data_info"]["count"] == 1797
    assert res.samples is not None and res.samples.stat().st_size > 0
    log = read_log(tmp_path / "log.jsonl")
    assert log[-1]["step"] == 10 and {"loss", "lr", "images_seen", "it_per_s"} <= set(log[-1])


def test_unknown_plugin_and_class_mismatch(tmp_path, digits):
    with pytest.raises(ConfigError, match="unknown timestep sampler 'clts-typo'"):
        Trainer(_config(timestep_sampler="clts-typo"), tmp_path, data=digits, progress=False)
    with pytest.raises(ConfigError, match="needs labels for 7 classes"):
        Trainer(_config(model=ModelConfig(num_classes=7, channels=8)), tmp_path, data=digits, progress=False)


def test_nan_loss_stops_with_a_clear_error(tmp_path, digits):
    from lcsc.errors import TrainingError

    t = Trainer(_config(iterations=6, save_every=2), tmp_path, data=digits, progress=False)
    real = t.loss_fn

    def exploding(model, x, labels, gen, step, target):
        loss, stats = real(model, x, labels, gen, step, target)
        return (loss * float("nan") if step == 4 else loss), stats

    t.loss_fn = exploding
    with pytest.raises(TrainingError, match="loss is nan at step 4.*step 2"):
        t.run()
    assert Trainer(_config(iterations=6, save_every=2), tmp_path, data=digits, progress=False).step == 2


def test_faster_training_plugins_survive_resume(tmp_path, digits):
    """CLTS + Min-SNR + MDLRC: a killed and resumed run equals the uninterrupted one (weights and β₁/lr state)."""
    from lcsc.training import OptimConfig

    cfg = _config(timestep_sampler="clts", clts_target=6, loss_weighting="minsnr",
                  optim=OptimConfig(lr=1e-3, schedule="mdlrc", beta_min=0.6))
    full = Trainer(cfg, tmp_path / "full", data=digits, progress=False)
    full.run()
    resumed = _crash_then_resume(cfg, tmp_path / "part", digits)
    a, b = load_file(tmp_path / "full/last.safetensors"), load_file(tmp_path / "part/last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.optimizer.param_groups[0]["betas"] == full.optimizer.param_groups[0]["betas"]
    log = read_log(tmp_path / "part/log.jsonl")
    assert log[-1]["beta1"] < 0.9 and log[-1]["lr"] < 1e-3


class _CudaLikeGenerator:
    """Stands in for a CUDA generator: like torch's, ``set_state`` takes only a CPU uint8 tensor."""

    device = torch.device("cuda")

    def __init__(self) -> None:
        self.state = None

    def set_state(self, state: torch.Tensor) -> None:
        if state.device.type != "cpu" or state.dtype != torch.uint8:
            raise TypeError("RNG state must be a torch.ByteTensor")
        self.state = state


def test_resume_on_cuda_hands_the_generator_a_cpu_state(tmp_path, digits, monkeypatch):
    """The CUDA resume bug: the saved state was moved to the GPU before set_state, which CUDA generators refuse."""
    cfg = _config(iterations=5)
    trainer = Trainer(cfg, tmp_path, data=digits, progress=False)
    trainer.run()
    saved = trainer.noise_gen.get_state()
    trainer.noise_gen, trainer.device = _CudaLikeGenerator(), torch.device("cuda")
    trainer._restore()
    assert torch.equal(trainer.noise_gen.state, saved) and trainer.step == 5


def test_resume_with_another_generator_kind_is_one_clear_error(tmp_path):
    cuda_state = torch.zeros(16, dtype=torch.uint8)  # a CUDA (Philox) state: seed and offset
    with pytest.raises(CheckpointError, match=r"state\.pt: the saved random-generator state does not fit this run's "
                                              r"cpu generator .*; resume on the device") as info:
        restore_generator(torch.Generator(), cuda_state, tmp_path / "state.pt")
    assert "\n" not in str(info.value)
