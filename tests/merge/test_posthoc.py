"""Post-hoc EMA: exact stored profiles, the least-squares solve, accuracy against online EMAs, the profile algebra,
and clear errors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy.integrate import quad

from lcsc.errors import ConfigError
from lcsc.merge import PosthocEMA
from lcsc.merge import posthoc as posthoc_mod
from lcsc.merge.posthoc import Snapshot
from lcsc.merge.profiles import exponential_inner, power_cdf, power_density, power_inner, stieltjes_inner
from lcsc.training import CheckpointRecorder, MultiEMA, PowerEMA
from lcsc.training.phema import sigma_rel_to_gamma

STEPS, EVERY, DIM = 2000, 50, 1000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 1000-d random walk with drift (float32 weights, as training records them), 2000 steps: power-EMA snapshots
    at σ_rel 0.05 / 0.10 every 50 steps, plus online power EMAs at 0.07 / 0.13 and online EMAs with half-lives
    100 / 300 to compare against."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only stall when the cores are busy
    root = tmp_path_factory.mktemp("phema-run")
    torch.manual_seed(0)
    model = torch.nn.Linear(DIM, 1, bias=False)
    init = model.weight.detach().clone().reshape(-1).double()
    rec = CheckpointRecorder(root, model, total_steps=STEPS, phema_sigma_rels=(0.05, 0.10), phema_every=EVERY)
    online, ema = PowerEMA(model, (0.07, 0.13)), MultiEMA(model, half_lives=(100, 300))
    gen = torch.Generator().manual_seed(1)
    drift = torch.randn(DIM, generator=gen, dtype=torch.float64) * 0.05
    with torch.no_grad():
        for step in range(1, STEPS + 1):
            model.weight.add_((drift + torch.randn(DIM, generator=gen, dtype=torch.float64)).float().reshape(1, -1))
            rec.step(step)
            online.update(step)
            ema.update()
    torch.set_num_threads(threads)
    return {"root": root, "init": init, "online": online, "ema": ema}


@pytest.fixture(scope="module")
def ph(run) -> PosthocEMA:
    return PosthocEMA.open(run["root"])


def _vec(sd) -> torch.Tensor:
    return sd["weight"].reshape(-1).double()


def test_open_lists_sigma_rels_and_steps(ph):
    assert ph.sigma_rels == [0.05, 0.1]
    assert ph.steps == list(range(EVERY, STEPS + 1, EVERY))


@pytest.mark.parametrize("step", [1000, STEPS])
def test_stored_profile_is_that_snapshot_bit_for_bit(ph, run, step):
    rec = ph.coefficients(step, sigma_rel=0.10)
    path = run["root"] / f"phema/sigma-0.100/phema-{step:09d}.safetensors"
    assert rec.paths == [path] and rec.weights.tolist() == [1.0]
    assert rec.profile_error == 0.0 and rec.weight_sum == 1.0
    got, stored = ph.reconstruct(step, sigma_rel=0.10), load_file(path)
    assert got.keys() == stored.keys() and all(torch.equal(got[k], stored[k]) for k in stored)


@pytest.mark.parametrize("sigma_rel, step", [(0.05, STEPS), (0.10, STEPS), (0.05, 500)])
def test_least_squares_recovers_a_stored_profile(ph, sigma_rel, step):
    """Bypassing the shortcut: G x = b for a stored profile gives e_i (the Gram system is well posed)."""
    rec = ph.solve(step, sigma_rel=sigma_rel)
    want = np.array([float(p.name == f"phema-{step:09d}.safetensors" and f"{sigma_rel:.3f}" in p.parent.name)
                     for p in rec.paths])
    assert want.sum() == 1 and len(rec.paths) == 2 * step // EVERY
    np.testing.assert_allclose(rec.weights, want, atol=1e-8)
    assert rec.profile_error < 1e-6


def _errors(rec_vec, online, init, snapshot) -> tuple[float, float]:
    """‖recon − online‖ relative to how far the online average moved from the initial weights, and relative to its
    distance from the σ_rel 0.05 snapshot at that step (the difference the reconstruction had to create)."""
    diff = float((rec_vec - online).norm())
    return diff / float((online - init).norm()), diff / float((online - snapshot).norm())


@pytest.mark.parametrize("sigma_rel", [0.07, 0.13])
def test_reconstruction_matches_an_online_power_ema(ph, run, sigma_rel):
    # Measured (float32 weights): σ_rel 0.07 → profile error 6.3e-4, weight error 3.3e-6 (vs init) / 1.1e-4 (vs the
    # 0.05 snapshot); σ_rel 0.13 → 8.6e-4, 4.8e-6 / 3.7e-5. The bounds leave ~10× headroom; a wrong target
    # (e.g. the nearest stored snapshot) scores 1.0 on the second measure.
    rec = ph.coefficients(STEPS, sigma_rel=sigma_rel)
    online = _vec(run["online"].state_dict_for(f"sigma-{sigma_rel:.3f}"))
    snap = _vec(load_file(run["root"] / f"phema/sigma-0.050/phema-{STEPS:09d}.safetensors"))
    vs_init, vs_snapshot = _errors(_vec(ph.combine(rec)), online, run["init"], snap)
    assert rec.profile_error < 0.005 and abs(rec.weight_sum - 1) < 1e-3
    assert vs_init < 5e-5 and vs_snapshot < 1e-3


@pytest.mark.parametrize("half_life", [100, 300])
def test_reconstruction_matches_an_online_ema(ph, run, half_life):
    # The online EMA starts at the initial weights; their share β^T is removed and the rest renormalised (as the
    # target is defined). Measured: H = 100 → profile error 2.0e-3, weight error 1.3e-6 / 5.4e-5;
    # H = 300 → 6.7e-3, 1.4e-4 / 6.6e-4. Bounds: ~5–10× headroom.
    beta = 0.5 ** (1 / half_life)
    rec = ph.coefficients(STEPS, half_life=half_life)
    online = _vec(run["ema"].state_dict_for(f"hl-{half_life}"))
    online = (online - beta**STEPS * run["init"]) / (1 - beta**STEPS)
    snap = _vec(load_file(run["root"] / f"phema/sigma-0.050/phema-{STEPS:09d}.safetensors"))
    vs_init, vs_snapshot = _errors(_vec(ph.combine(rec)), online, run["init"], snap)
    assert rec.profile_error < 0.02
    assert vs_init < 1e-3 and vs_snapshot < 5e-3


def test_reconstruct_many_loads_each_file_once(ph, run, monkeypatch):
    fresh = PosthocEMA.open(run["root"])
    calls = []
    real = posthoc_mod.load_file
    monkeypatch.setattr(posthoc_mod, "load_file", lambda p: calls.append(p) or real(p))
    targets = [{"sigma_rel": 0.07}, {"sigma_rel": 0.13}, {"half_life": 100}]
    many = fresh.reconstruct_many(STEPS, targets)
    assert len(calls) == len(set(calls)) == 2 * STEPS // EVERY
    for sd, target in zip(many, targets):
        assert torch.equal(sd["weight"], ph.reconstruct(STEPS, **target)["weight"])
    with pytest.raises(ConfigError, match="unknown keys"):
        fresh.reconstruct_many(STEPS, [{"sigma": 0.1}])


def _quad_inner(ta: float, ga: float, tb: float, gb: float) -> float:
    value, _ = quad(lambda x: power_density(ta, ga, x) * power_density(tb, gb, x), 0, min(ta, tb), limit=400,
                    epsabs=0, epsrel=1e-12)
    return value


def test_power_inner_product_closed_form_matches_quadrature():
    for (ta, ga), (tb, gb) in [((700, 6.94), (1000, 16.97)), ((1000, 2.0), (1000, 0.5)), ((30, 0.2), (90, 40.0))]:
        numeric = _quad_inner(ta, ga, tb, gb)
        assert float(power_inner(ta, ga, tb, gb)) == pytest.approx(numeric, rel=1e-9)
        assert float(power_inner(tb, gb, ta, ga)) == pytest.approx(numeric, rel=1e-9)
        # the same through the general numeric route: a fine piecewise-constant version of profile b
        edges = np.linspace(0, tb, 200_001)
        q = np.diff(power_cdf(tb, gb, edges)) / np.diff(edges)
        assert float(stieltjes_inner(edges, q, [ta], [ga])[0]) == pytest.approx(numeric, rel=1e-4)


def test_exponential_target_matches_the_step_by_step_sum():
    t, g = np.array([600.0, 1500.0, 3000.0]), np.array([6.94, 16.97, 500.0])
    for steps, half_life in [(3000, 150.0), (3000, 20_000.0), (2_000_000, 5000.0)]:
        beta = 0.5 ** (1 / half_life)
        s = np.arange(1, steps + 1, dtype=np.float64)
        q = (1 - beta) * beta ** (steps - s) / (1 - beta**steps)  # the renormalised online-EMA step weights
        tt = t * steps / 3000
        brute = np.array([q @ np.diff(power_cdf(ti, gi, np.arange(steps + 1.0))) for ti, gi in zip(tt, g)])
        b, norm2 = exponential_inner(tt, g, steps, half_life)
        np.testing.assert_allclose(b, brute, rtol=1e-5, atol=1e-30)
        assert norm2 == pytest.approx(float(q @ q), rel=1e-10)


def _online_ema_weights(steps: int, half_life: float) -> np.ndarray:
    """The weights θ̄_T = Σ_{s=0}^{T} w_s θ_s of an online EMA started at θ̄_0 = θ_0, by running its update
    θ̄_t = β θ̄_{t−1} + (1 − β) θ_t (β = 0.5^(1/H)) on one-hot iterates."""
    beta, w = 0.5 ** (1 / half_life), np.zeros(steps + 1)
    w[0] = 1.0
    for t in range(1, steps + 1):
        w *= beta
        w[t] += 1 - beta
    return w


def test_half_life_target_is_the_online_ema_without_its_initial_share_renormalised(ph):
    """At H = 1280 and step 800 the online EMA keeps 0.5^(800/1280) = 64.8 % on the initial weights, which
    snapshots cannot hold: the target is its weights on iterates 1..T divided by (1 − that share), summing to 1."""
    steps, half_life = 800, 1280.0
    w = _online_ema_weights(steps, half_life)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    share = posthoc_mod.initial_weights_share(steps, half_life)
    assert share == pytest.approx(w[0], rel=1e-12) and share == pytest.approx(0.6484, abs=1e-4)
    q = w[1:] / (1 - share)  # the profile the code must build
    t, g = np.array([200.0, 500.0, 800.0]), np.array([0.0, 6.94, 16.97])
    b, norm2 = exponential_inner(t, g, steps, half_life)
    brute = np.array([q @ np.diff(power_cdf(ti, gi, np.arange(steps + 1.0))) for ti, gi in zip(t, g)])
    np.testing.assert_allclose(b, brute, rtol=1e-9)
    assert norm2 == pytest.approx(float(q @ q), rel=1e-9)
    # against the uniform profile over (0, T] (density 1/T) the inner product is Σ_s q_s / T: the weights sum to 1
    assert float(exponential_inner(np.array([800.0]), np.zeros(1), steps, half_life)[0][0]) * steps == \
        pytest.approx(1.0, rel=1e-9)
    rec = ph.coefficients(STEPS, half_life=300)
    assert rec.initial_share == pytest.approx(0.5 ** (STEPS / 300), rel=1e-12)
    assert ph.coefficients(STEPS, sigma_rel=0.07).initial_share is None


def test_discrete_power_weights_are_the_profile_integrated_over_each_step():
    ema_weights = lambda s, T, g: (s ** (g + 1) - (s - 1) ** (g + 1)) / T ** (g + 1)  # noqa: E731
    s = np.arange(1, 101, dtype=np.float64)
    np.testing.assert_allclose(np.diff(power_cdf(100.0, 6.94, np.arange(101.0))), ema_weights(s, 100.0, 6.94))


def test_ranges_hold_the_stored_sigma_rels_and_end_where_the_error_passes_tol(ph):
    lo, hi = ph.sigma_rel_range(STEPS)
    assert lo < 0.05 and 0.10 < hi < 0.2887
    assert ph.solve(STEPS, sigma_rel=lo).profile_error <= 0.05 and ph.solve(STEPS, sigma_rel=hi).profile_error <= 0.05
    assert ph.solve(STEPS, sigma_rel=lo / 1.05).profile_error > 0.05
    assert ph.solve(STEPS, sigma_rel=min(hi * 1.05, 0.288)).profile_error > 0.05
    hlo, hhi = ph.half_life_range(STEPS)
    assert hlo < 100 and hhi > 300
    assert ph.solve(STEPS, half_life=hlo / 1.2).profile_error > 0.05
    assert ph.solve(STEPS, half_life=hhi * 1.2).profile_error > 0.05
    assert ph.sigma_rel_range(STEPS, tol=0.01)[1] < hi  # a stricter tolerance narrows it


def test_stored_sigma_rels_too_far_apart_leave_a_gap():
    """Snapshots at σ_rel 0.015 and 0.25 only: early in the run the σ_rels between them are not reconstructable
    (profile error up to ~0.4), later they are."""
    snaps = [Snapshot(Path(f"s{s}-{t}"), t, s, sigma_rel_to_gamma(s)) for s in (0.015, 0.25) for t in range(20, 641, 20)]
    ph = PosthocEMA(snaps, "mem")
    early = ph.sigma_rel_intervals(80)
    assert len(early) == 2 and early[0][1] < 0.05 < early[1][0]
    assert ph.sigma_rel_range(80) == (early[0][0], early[1][1])
    assert ph.solve(80, sigma_rel=0.05).profile_error > 0.3
    with pytest.raises(ConfigError, match=r"sigma_rel 0.05 falls in a gap of the reconstructable range \[0\.\d+, "
                       r"0\.\d+\] ∪ \[0\.\d+, 0\.\d+\] at step 80 .*stored sigma_rels 0.015, 0.25"):
        ph.coefficients(80, sigma_rel=0.05)
    assert len(ph.sigma_rel_intervals(640)) == 1 and ph.reconstructable(640, 0.05)
    assert ph.coefficients(640, sigma_rel=0.05).profile_error < 0.05


def _range_text(lo: float, hi: float, fmt: str) -> str:
    return re.escape(f"[{lo:{fmt}}, {hi:{fmt}}]")


def test_bad_inputs_name_the_range(ph):
    lo, hi = ph.sigma_rel_range(STEPS)
    with pytest.raises(ConfigError, match=_range_text(lo, hi, ".4f") + r" at step 2000 .*stored sigma_rels 0.05, 0.1"):
        ph.coefficients(STEPS, sigma_rel=0.27)
    with pytest.raises(ConfigError, match=_range_text(lo, hi, ".4f")):
        ph.coefficients(STEPS, sigma_rel=0.003)
    hlo, hhi = ph.half_life_range(STEPS)
    with pytest.raises(ConfigError, match=r"half-life 100000 .*" + _range_text(hlo, hhi, ".4g") + " iterations"):
        ph.coefficients(STEPS, half_life=1e5)
    with pytest.raises(ConfigError, match=re.escape("step 2050 is outside the snapshots' steps [50, 2000]")):
        ph.coefficients(2050, sigma_rel=0.07)
    with pytest.raises(ConfigError, match=re.escape("steps [50, 2000]")):
        ph.coefficients(10, sigma_rel=0.07)
    with pytest.raises(ConfigError, match="exactly one of sigma_rel and half_life"):
        ph.coefficients(STEPS, sigma_rel=0.07, half_life=100)
    with pytest.raises(ConfigError, match="exactly one of sigma_rel and half_life"):
        ph.coefficients(STEPS)
    for bad in (0.0, 0.3, -1.0):
        with pytest.raises(ConfigError, match=re.escape("must be in (0, 0.2887)")):
            ph.coefficients(STEPS, sigma_rel=bad)
    for bad in (0.0, -5.0, math.inf):
        with pytest.raises(ConfigError, match="positive number of iterations"):
            ph.coefficients(STEPS, half_life=bad)
    with pytest.raises(ConfigError, match="no σ_rel can be reconstructed at step 75 .*snapshot steps 50, 100, …"):
        ph.coefficients(75, sigma_rel=0.07)


def test_no_snapshots_names_the_folder(tmp_path):
    (tmp_path / "ema").mkdir()
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "phema")) + ".*--phema-sigma-rels"):
        PosthocEMA.open(tmp_path)
