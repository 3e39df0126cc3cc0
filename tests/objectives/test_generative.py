"""Generative objectives: same score twice, never the held-out seed, built from a run's metadata alone."""

from __future__ import annotations

import pytest
import torch

from lcsc.data import load_digits_data
from lcsc.errors import ConfigError
from lcsc.metrics import reference_set
from lcsc.metrics.digits_features import digits_features
from lcsc.models import ModelConfig, build_model
from lcsc.objectives import FDObjective, KIDObjective, builtin_objective, is_builtin
from lcsc.objectives import generative as gen_mod
from lcsc.training import RecordConfig, TrainConfig, train


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="dm", channels=8, num_classes=10))
    feats = digits_features("digits")
    return model, feats, reference_set(load_digits_data(), feats)


def test_same_state_same_score_and_held_out_differs(setup, monkeypatch):
    model, feats, ref = setup
    obj = FDObjective(model, feats, ref, num_samples=64, nfe=2, noise_seed=5)
    seeds = []
    real_draw = gen_mod.draw_inputs

    def spy(config, n, generator, **kw):
        seeds.append(generator.initial_seed())
        return real_draw(config, n, generator, **kw)

    monkeypatch.setattr(gen_mod, "draw_inputs", spy)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    a, b = obj.score(sd), obj.score(sd)
    assert a == b and a > 0
    assert seeds == [5] and obj.held_out_seed not in seeds  # the inputs are drawn once and reused
    held = obj.held_out()
    assert held.role == "held_out" and held.score(sd) != a and seeds[-1] == obj.held_out_seed
    assert obj.noise_seed == 5  # the original is untouched


def test_score_depends_on_the_state(setup):
    model, feats, ref = setup
    obj = KIDObjective(model, feats, ref, num_samples=64, nfe=1, kid_subsets=5)
    sd = model.state_dict()
    other = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in sd.items()}
    assert obj.score(sd) != obj.score(other)
    assert obj.direction == "minimize" and obj.num_samples == 64 and obj.nfe == 1


def test_builtin_objective_from_run_metadata(tmp_path):
    cfg = TrainConfig(model=ModelConfig(kind="cm", channels=8), iterations=4, batch_size=8,
                      record=RecordConfig(window=2, interval=1), sample_count=0)
    train(cfg, tmp_path, progress=False)
    obj = builtin_objective(tmp_path / "windows/4", "fd", num_samples=32)
    assert obj.name == "fd_digits" and obj.nfe == 1 and obj.features.name == "digits"
    assert obj.score(obj.model.state_dict()) > 0
    auto = builtin_objective(tmp_path / "windows/4", num_samples=32)  # digits runs: the calibrated mean
    assert auto.name == "mean:fd_digits,fd_digits2" and [t.features.name for t in auto.terms] == ["digits", "digits2"]
    assert auto.terms[1].model is auto.terms[0].model
    assert builtin_objective(tmp_path / "windows/4", "kid-digits2", num_samples=32).features.name == "digits2"
    amp = builtin_objective(tmp_path / "windows/4", num_samples=32, autocast="bf16")  # every term samples in bf16
    assert [t.autocast for t in amp.terms] == ["bf16", "bf16"] and amp.terms[0].held_out().autocast == "bf16"
    assert is_builtin("fid") and is_builtin("fd-digits2") and not is_builtin("my.py:fn")
    with pytest.raises(ConfigError, match="built-ins are"):
        builtin_objective(tmp_path / "windows/4", "fd-clip")


def test_builtin_objective_refuses_foreign_checkpoints(ckpt_dir):
    with pytest.raises(ConfigError, match="needs checkpoints written by lcsc"):
        builtin_objective(ckpt_dir)
