"""CM: CT loss decreases on digits, CD from a tiny teacher, the teacher's EDM view, deterministic sampling."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lcsc.checkpoints import save_checkpoint
from lcsc.consistency import EDMTeacher
from lcsc.consistency.karras import ict_num_scales, karras_sigmas
from lcsc.data import load_digits_data
from lcsc.generate import generate
from lcsc.models import ModelConfig, build_model
from lcsc.training import ConsistencyConfig, OptimConfig, RecordConfig, TrainConfig, train
from lcsc.training.log import read_log


def _cfg(**kw) -> TrainConfig:
    base = dict(model=ModelConfig(kind="cm", channels=16), iterations=150, batch_size=64, optim=OptimConfig(lr=1e-3),
                record=RecordConfig(window=1, interval=1), log_every=10, sample_count=0)
    return TrainConfig(**(base | kw))


def test_ct_loss_decreases_on_digits(tmp_path):
    cfg = _cfg(consistency=ConsistencyConfig(mode="ct", s0=10, s1=10))  # fixed N: a stationary objective
    train(cfg, tmp_path, data=load_digits_data(), progress=False)
    losses = [r["loss"] for r in read_log(tmp_path / "log.jsonl")]
    assert losses[-1] < 0.8 * losses[0], losses


def test_ict_curriculum_and_karras_grid():
    assert [ict_num_scales(k, 700, 10, 1280) for k in (0, 86, 87, 699)] == [11, 11, 21, 1281]
    s = karras_sigmas(5, 0.002, 80.0).double()
    assert abs(float(s[0]) - 0.002) < 1e-6 and abs(float(s[-1]) - 80.0) < 1e-4 and torch.all(s[1:] > s[:-1])


def test_teacher_is_the_epsilon_model_as_an_edm_denoiser():
    torch.manual_seed(0)
    dm = build_model(ModelConfig(kind="dm", channels=8)).eval()
    teacher = EDMTeacher(dm)
    t = torch.tensor([0, 250, 999])
    sig = dm.schedule.sigmas()[t].float()
    assert torch.allclose(teacher.timestep(sig), t.float(), atol=1e-3)
    x = torch.randn(3, 1, 8, 8)
    eps = dm(x / (1 + sig.view(-1, 1, 1, 1) ** 2).sqrt(), t.float())
    assert torch.allclose(teacher(x, sig), x - sig.view(-1, 1, 1, 1) * eps, atol=1e-4)


def test_cd_short_run_from_a_tiny_teacher(tmp_path):
    torch.manual_seed(0)
    dm_cfg = ModelConfig(kind="dm", channels=8)
    teacher = save_checkpoint(tmp_path / "teacher.safetensors", build_model(dm_cfg).state_dict(), step=1,
                              config=dm_cfg.to_dict())
    cfg = _cfg(iterations=20, consistency=ConsistencyConfig(mode="cd", teacher=str(teacher), num_scales=6))
    res = train(cfg, tmp_path / "cd", data=load_digits_data(), progress=False)
    assert res.step == 20 and torch.isfinite(torch.tensor(res.last_loss))
    saved = ModelConfig.from_dict(__import__("json").loads((tmp_path / "cd/train_config.json").read_text())["model"])
    assert saved.sigma_min == pytest.approx(float(build_model(dm_cfg).schedule.sigmas()[0]), rel=1e-6)


@pytest.mark.parametrize("nfe", [1, 2, 4])
def test_cm_sampling_is_deterministic(nfe):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cm", channels=8))
    a, b = generate(model, 5, 7, nfe=nfe), generate(model, 5, 7, nfe=nfe)
    assert torch.equal(a, b) and not torch.equal(a, generate(model, 5, 8, nfe=nfe))


def test_cd_config_errors():
    with pytest.raises(Exception, match="needs a teacher"):
        ConsistencyConfig(mode="cd")
    with pytest.raises(Exception, match="s0 <= s1"):
        dataclasses.replace(ConsistencyConfig(), s0=100, s1=10)
