"""Mean objective (calibrated on the initial population), racing prefixes, batched sampling, cross-space reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcsc.data import load_digits_data
from lcsc.errors import ConfigError
from lcsc.generate import draw_inputs, generate, generate_many
from lcsc.metrics import reference_set
from lcsc.metrics.digits_features import digits_features
from lcsc.models import ModelConfig, build_model
from lcsc.objectives import VALIDATION_SEED_OFFSET, FDObjective, MeanObjective
from lcsc.objectives.cross_space import SpaceReport, cross_space_report, searched_spaces


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    data = load_digits_data()
    spaces = {s: digits_features(s) for s in ("digits", "digits2", "digits3")}
    refs = {s: reference_set(data, f) for s, f in spaces.items()}
    return spaces, refs


def _states(model, count: int, scale: float = 0.03):
    base = model.state_dict()
    gen = torch.Generator().manual_seed(1)
    return [{k: v + scale * i * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
             for k, v in base.items()} for i in range(count)]


def _fd(model, parts, space, n=96, nfe=1, seed=3):
    spaces, refs = parts
    return FDObjective(model, spaces[space], refs[space], num_samples=n, nfe=nfe, noise_seed=seed)


@pytest.mark.parametrize("kind,nfe", [("cm", 1), ("cm", 3), ("dm", 4)])
def test_generate_many_equals_generate_and_prefix_is_the_same_noise(kind, nfe):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, channels=8, num_classes=10)).eval()
    states = _states(model, 3)
    inputs = draw_inputs(model.config, 40, torch.Generator().manual_seed(7), nfe=nfe)
    many = generate_many(model, states, inputs, nfe=nfe, batch_size=60)
    for state, images in zip(states, many):
        model.load_state_dict(state)
        one = generate(model, 40, None, nfe=nfe, inputs=inputs)
        # equal up to float32 rounding: an untrained DM's x̂0 reaches ~1e3 before the clamp, where one ulp is ~1e-4
        assert torch.allclose(images, one, atol=1e-3), (images - one).abs().max()
    model.load_state_dict(states[1])
    head = generate(model, 16, None, nfe=nfe, inputs=inputs.prefix(16))
    assert torch.equal(head, generate(model, 40, None, nfe=nfe, inputs=inputs)[:16])
    with pytest.raises(ConfigError, match="cannot take 41 of 40"):
        inputs.prefix(41)


def test_with_samples_scores_a_prefix_of_the_same_noise(parts):
    model = build_model(ModelConfig(kind="cm", channels=8, num_classes=10))
    obj = _fd(model, parts, "digits", n=96)
    short = obj.with_samples(48)
    state = model.state_dict()
    assert short.num_samples == 48 and obj.num_samples == 96
    assert torch.equal(short.samples(state), obj.samples(state)[:48])
    batched = _fd(model, parts, "digits", n=96)
    batched.batched = True
    states = _states(model, 3)
    assert np.allclose(batched.score_many(states), [obj.score(s) for s in states], rtol=1e-4)
    with pytest.raises(ConfigError, match="between 2 and"):
        obj.with_samples(97)
    val = obj.validation()
    assert val.role == "validation" and val.noise_seed == obj.noise_seed + VALIDATION_SEED_OFFSET
    assert val.noise_seed not in (obj.noise_seed, obj.held_out_seed) and val.score(state) != obj.score(state)


def test_mean_objective_is_calibrated_on_the_best_initial_individual(parts):
    model = build_model(ModelConfig(kind="cm", channels=8, num_classes=10))
    terms = [_fd(model, parts, "digits"), _fd(model, parts, "digits2")]
    mean = MeanObjective(terms)
    states = _states(model, 4, scale=0.2)
    with pytest.raises(ConfigError, match="not calibrated"):
        mean.score(states[0])
    state = mean.calibrate(states)
    raw = np.array([[t.score(s) for t in terms] for s in states])
    assert np.allclose(state["raw"], raw)
    best = int(np.argmin((raw / raw.min(axis=0)).mean(axis=1)))
    assert state["best_initial"] == best and np.allclose(mean.normalizers, raw[best])
    assert mean.score(states[best]) == pytest.approx(1.0)  # the best initial individual scores exactly 1
    assert np.allclose(state["scores"], (raw / raw[best]).mean(axis=1))
    assert mean.with_samples(48).normalizers == mean.normalizers  # racing shares the calibration
    held = mean.held_out()
    assert held.role == "held_out" and held.score(states[0]) != mean.score(states[0])
    other = MeanObjective([_fd(model, parts, "digits"), _fd(model, parts, "digits3")])
    other.load_calibration(state)
    assert other.normalizers == mean.normalizers
    with pytest.raises(ConfigError, match="share noise seed"):
        MeanObjective([_fd(model, parts, "digits"), _fd(model, parts, "digits2", seed=4)])


def test_cross_space_report_marks_searched_spaces_and_gains(parts):
    model = build_model(ModelConfig(kind="cm", channels=8, num_classes=10))
    objs = {s: (_fd(model, parts, s).held_out(), s == "digits") for s in ("digits", "digits2", "digits3")}
    states = dict(zip(("best", "best initial"), _states(model, 2, scale=0.2)))
    reports = cross_space_report(objs, states)
    assert [r.space for r in reports] == ["digits", "digits2", "digits3"]
    assert [r.searched for r in reports] == [True, False, False]
    for r in reports:
        obj = objs[r.space][0]
        assert r.scores["best"] == pytest.approx(obj.score(states["best"]), rel=1e-9)
        assert r.gain() == pytest.approx(1 - r.scores["best"] / r.scores["best initial"])
    assert SpaceReport("x", True, {"best": 1.0, "best initial": 2.0}).gain() == 0.5
    assert searched_spaces("mean:fd-digits,fd-digits3", "digits") == ["digits", "digits3"]
    assert searched_spaces("auto", "inception") == ["inception"]


def test_max_objective_is_normalised_at_the_best_reference_and_scores_the_worst_ratio(parts):
    model = build_model(ModelConfig(kind="cm", channels=8, num_classes=10))
    terms = [_fd(model, parts, "digits"), _fd(model, parts, "digits2")]
    worst = MeanObjective(terms, reduce="max")
    assert worst.name.startswith("max:")
    states = _states(model, 4, scale=0.2)
    state = worst.calibrate(states, reference=[1, 3])  # only these two may set the normalisers (e.g. the anchors)
    raw = np.array(state["raw"])
    ratios = raw[[1, 3]] / raw[[1, 3]].min(axis=0)
    best = [1, 3][int(np.argmin(ratios.max(axis=1)))]
    assert state["best_initial"] == best and np.allclose(worst.normalizers, raw[best])
    assert np.allclose(state["scores"], (raw / raw[best]).max(axis=1))
    assert worst.score(states[best]) == pytest.approx(1.0)  # the reference scores 1: below 1 beats it in every term
    with pytest.raises(ConfigError, match="reduce='median'"):
        MeanObjective(terms, reduce="median")
