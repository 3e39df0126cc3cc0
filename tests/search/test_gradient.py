"""Gradient LCSC: the chain rule through merge → sampler → features → FD/KID/mean/max matches finite differences in
the coefficients, Σa = 1 exactly at every step, a synthetic problem reaches its known optimum, the guard exports the
anchor when nothing beats it, and the gradient noise is a family of its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcsc import protocol
from lcsc.checkpoints import CheckpointStack
from lcsc.data import load_digits_data
from lcsc.errors import ConfigError
from lcsc.generate import draw_inputs
from lcsc.merge import StackMerger
from lcsc.metrics.digits_features import DigitsCNN
from lcsc.metrics.features import ClassifierFeatures
from lcsc.metrics.reference import reference_set
from lcsc.models import ModelConfig, build_model
from lcsc.objectives import FDObjective, FunctionObjective, KIDObjective, MeanObjective, combine_terms
from lcsc.objectives.base import noise_fingerprint
from lcsc.search import SearchConfig
from lcsc.search.grad_config import GradConfig
from lcsc.search.gradient import GRADIENT_JOURNAL, check_differentiable, run_gradient_search
from lcsc.search.journal import Journal
from tests.conftest import make_states, write_states


def _stack(tmp_path_factory, kind: str, spread: float):
    """Five perturbed copies of a tiny model (a stack) and the model."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, channels=8))
    gen = torch.Generator().manual_seed(1)
    states = [{k: v + spread * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
               for k, v in model.state_dict().items()} for _ in range(5)]
    folder = tmp_path_factory.mktemp(kind) / "ckpts"
    write_states(folder, states)
    return model, StackMerger(CheckpointStack.open(folder, progress=False))


@pytest.fixture(scope="module")
def cm_stack(tmp_path_factory):
    return _stack(tmp_path_factory, "cm", 0.3)  # one-step CM images stay mostly inside [-1, 1] (few clamped)


@pytest.fixture(scope="module")
def dm_stack(tmp_path_factory):
    return _stack(tmp_path_factory, "dm", 0.3)


def _directional(loss_fn, a: np.ndarray, d: np.ndarray, eps: float) -> tuple[float, float]:
    """(central difference along d, the projected gradient · d)."""
    _, grad = loss_fn(a)
    plus, minus = loss_fn(a + eps * d)[0], loss_fn(a - eps * d)[0]
    return (plus - minus) / (2 * eps), float((grad * d).sum())


A = np.array([[0.5, -0.2, 0.3, 0.25, 0.15]])
DIRECTIONS = (np.array([[1.0, -1.0, 0.0, 0.0, 0.0]]), np.array([[0.2, 0.5, -0.4, -0.6, 0.3]]))


@pytest.mark.parametrize(("kind", "solver", "nfe"), [("dm", "ddim", 3), ("dm", "dpm-solver", 3), ("cm", None, 2)])
def test_the_solvers_gradient_through_checkpointed_steps_matches_finite_differences(
        dm_stack, cm_stack, kind, solver, nfe, one_thread):
    """The unclamped solver output (DDIM, DPM-Solver++, multistep CM) with each network call checkpointed."""
    from lcsc.consistency.sampling import integrate_cm
    from lcsc.diffusion.sampling import integrate_dm
    from lcsc.generate_grad import WithWeights, checkpointed_call

    model, merger = dm_stack if kind == "dm" else cm_stack
    inputs = draw_inputs(model.config, 16, torch.Generator().manual_seed(5), nfe=nfe, batch_size=16)

    def loss_fn(a):
        theta = merger.merge_vector(a).detach().requires_grad_(True)
        net = WithWeights(model, merger.state_dict(theta))
        x = integrate_dm(net, inputs.noise, None, nfe, solver, call=checkpointed_call) if kind == "dm" else \
            integrate_cm(net, inputs.noise, None, None, nfe, inputs.step_noise, call=checkpointed_call)
        loss = (x.double() ** 2).mean()
        loss.backward()
        return float(loss.detach()), merger.project(theta.grad)

    for d in DIRECTIONS:
        numeric, analytic = _directional(loss_fn, A, d, 1e-2)
        assert analytic == pytest.approx(numeric, rel=1e-2), (numeric, analytic)


@pytest.fixture(scope="module")
def digits_space():
    torch.manual_seed(2)
    features = ClassifierFeatures(DigitsCNN(), "digits-untrained", (1, 8, 8))
    return features, reference_set(load_digits_data(), features, cache=False)


def _loss_of(merger, objective, a: np.ndarray, inputs, reduce: str, norms) -> tuple[float, np.ndarray]:
    theta = merger.merge_vector(a).detach().requires_grad_(True)
    terms = objective.loss_terms(merger.state_dict(theta), inputs, checkpoint=True)
    loss = combine_terms(terms, norms, reduce)
    loss.backward()
    return float(loss.detach()), merger.project(theta.grad)


@pytest.mark.parametrize("kind", ["fd", "kid", "mean", "max"])
def test_the_coefficient_gradient_matches_finite_differences(cm_stack, digits_space, kind, one_thread):
    """d loss / d a along two directions (float32 network, central differences) against the projected gradient:
    the whole chain merge → CM sampler (2 steps, checkpointed) → clamp → digits features → FD / KID / mean / smooth
    max."""
    model, merger = cm_stack
    features, ref = digits_space
    fd = FDObjective(model, features, ref, num_samples=64, nfe=2)
    kid = KIDObjective(model, features, ref, num_samples=64, nfe=2, kid_subsets=3, kid_subset_size=32)
    objective = {"fd": fd, "kid": kid, "mean": MeanObjective([fd, kid], reduce="mean"),
                 "max": MeanObjective([fd, kid], reduce="max")}[kind]
    inputs = draw_inputs(model.config, 48, torch.Generator().manual_seed(5), nfe=2, batch_size=48)
    reduce = getattr(objective, "reduce", "single")
    terms = objective.loss_terms(merger.state_dict(merger.merge_vector(A)), inputs)
    norms = [float(t.detach()) for t in terms]  # as the search does: every term 1 at the start

    def loss_fn(a):
        return _loss_of(merger, objective, a, inputs, reduce, norms)

    for d in DIRECTIONS:
        numeric, analytic = _directional(loss_fn, A, d, 3e-3)
        assert analytic == pytest.approx(numeric, rel=2e-2), (numeric, analytic)
        assert abs(analytic) > 1e-4


class Quadratic:
    """‖θ − θ*‖² over the float tensors, θ* a known combination (with a negative coefficient) of the stack's rows,
    plus a small draw from the step's fresh noise (so the loss is stochastic, like a batch FD)."""

    direction = "minimize"

    def __init__(self, target: dict[str, torch.Tensor], noise_seed: int = 0) -> None:
        self.target, self.noise_seed = target, noise_seed

    def _dist(self, state) -> torch.Tensor:
        return sum(((state[k].double() - t) ** 2).sum() for k, t in self.target.items())

    def loss(self, state, generator, batch_size):
        jitter = 1e-4 * torch.randn((), generator=generator, dtype=torch.float64)
        return self._dist(state) * (1 + jitter)

    def score(self, state) -> float:
        return float(self._dist(state))

    def validation(self):
        return self


def _quadratic(tmp_path, K: int = 4):
    states = make_states(K, seed=3)
    write_states(tmp_path / "ckpts", states)
    merger = StackMerger(CheckpointStack.open(tmp_path / "ckpts", progress=False))
    a_star = np.array([0.7, -0.3, 0.4, 0.2])
    target = {k: sum(float(c) * s[k].double() for c, s in zip(a_star, states))
              for k, v in states[0].items() if v.is_floating_point()}
    return merger, Quadratic(target), a_star


def test_a_synthetic_problem_reaches_its_known_optimum_with_sum_one_at_every_step(tmp_path):
    merger, objective, a_star = _quadratic(tmp_path)
    grad = GradConfig(steps=150, batch_size=2, lr=0.05, lr_final=0.05)
    res = run_gradient_search(merger, objective, SearchConfig(half_lives=(1.0, 2.0)), grad, tmp_path / "out",
                              progress=False)
    assert np.abs(res.best.reshape(-1) - a_star).max() < 2e-3
    assert res.gradient["losses"][-1] < 1e-3 * res.gradient["losses"][0]
    steps = [m for m in Journal.load(tmp_path / "out" / GRADIENT_JOURNAL).meta if m["type"] == "step"]
    assert len(steps) == 150
    assert all(np.asarray(m["a"]).sum(axis=1).tolist() == [1.0] for m in steps)  # exactly, every step
    assert res.best.reshape(1, -1).sum(axis=1).tolist() == [1.0]


def test_the_guard_exports_the_anchor_when_nothing_beats_it(tmp_path):
    merger, objective, a_star = _quadratic(tmp_path)
    exact = {k: v.float() for k, v in objective.target.items()}
    extras = {k: v for k, v in merger.stack.checkpoint(0).items() if k not in exact}
    anchored = StackMerger(merger.stack.with_anchors([("exact", {**exact, **extras})]))
    res = run_gradient_search(anchored, objective, SearchConfig(half_lives=(1.0,)), GradConfig(steps=3, lr=0.5),
                              tmp_path / "out", progress=False)
    assert res.best_name == "anchor exact" and res.gradient["guard"]["exported_anchor"]
    assert res.best.reshape(-1).tolist() == [0.0] * 4 + [1.0]


def test_objectives_without_a_gradient_are_refused_before_any_work(tmp_path):
    merger, _, _ = _quadratic(tmp_path)
    with pytest.raises(ConfigError, match="has no gradient"):
        run_gradient_search(merger, FunctionObjective(lambda sd: 1.0), SearchConfig(), GradConfig(), tmp_path / "o")
    assert not (tmp_path / "o").exists()
    check_differentiable(FDObjective.__new__(FDObjective))  # built-ins pass


@pytest.mark.parametrize("kw", [{"steps": 0}, {"lr": -1.0}, {"lr": float("nan")}, {"batch_size": 1},
                                {"average_from": 1.0}, {"lr_final": 0.0}])
def test_bad_gradient_settings_are_refused(kw):
    with pytest.raises(ConfigError):
        GradConfig(**kw)


def test_the_gradient_noise_is_a_family_of_its_own():
    for seed in range(6):
        stream = protocol.gradient_noise_seed(seed)
        assert protocol.noise_role(stream) == "gradient"
        others = {seed, seed + protocol.VALIDATION_NOISE_OFFSET, *protocol.held_out_seeds(seed, 3),
                  *protocol.held_out_seeds(seed, 3, "decision")}
        assert all(protocol.noise_role(o) != "gradient" for o in others)
        prints = {noise_fingerprint(torch.Generator().manual_seed(s)) for s in others}
        assert noise_fingerprint(torch.Generator().manual_seed(stream)) not in prints
    assert len({protocol.gradient_noise_seed(n, s) for n in range(12) for s in range(3)}) == 36
