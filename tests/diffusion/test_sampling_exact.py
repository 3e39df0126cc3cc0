"""DDIM and DPM-Solver++(2M) driven by the exact ε-predictor of Gaussian data reproduce that data (closed form)."""

from __future__ import annotations

import functools

import pytest
import torch

from lcsc.diffusion import NoiseSchedule
from lcsc.diffusion.sampling import sample_dm
from tests.diffusion.gaussian import MU, ExactEpsilon, S, posterior_mean_vp

N, SHAPE = 2048, (1, 8, 8)  # 131 072 i.i.d. values per run
VALUES = N * SHAPE[0] * SHAPE[1] * SHAPE[2]
# Sampling error: 4 standard errors of the pooled mean (s/√n ≈ 0.0014) and std (s/√(2n) ≈ 0.001) of n = VALUES draws.
MEAN_SAMPLING_TOL = 4 * S / VALUES**0.5
STD_SAMPLING_TOL = 4 * S / (2 * VALUES) ** 0.5
# The sampler starts from N(0, I) rather than the true x_T ~ N(√ᾱ_T μ, ᾱ_T s² + 1 − ᾱ_T) (ᾱ_999 ≈ 4·10⁻⁵): the
# mean is off by about μ·s/σ_T ≈ 0.001 at the output; allow 0.002.
MEAN_TOL = MEAN_SAMPLING_TOL + 0.002
# Discretisation allowances on the output std (measured, seed 0: DDIM NFE 50 −0.028, DPM-Solver++ NFE 20
# −0.021, NFE 50 +0.0013; mean errors −0.003): a first-order solver still loses std at 50 steps, a second-order one
# has converged.
STD_TOL = {("ddim", 50): 0.035, ("dpm-solver", 20): 0.03, ("dpm-solver", 50): 0.005}


@functools.cache
def _sample(solver: str, nfe: int, n: int = N) -> torch.Tensor:
    noise = torch.randn((N, *SHAPE), generator=torch.Generator().manual_seed(0))[:n]
    return sample_dm(ExactEpsilon(NoiseSchedule(1000, "linear")), noise, nfe=nfe, solver=solver)


def _errors(x: torch.Tensor) -> tuple[float, float]:
    """(mean − μ, std − s) of all values of ``x``."""
    return float(x.double().mean()) - MU, float(x.double().std()) - S


@pytest.mark.parametrize("solver, nfe", sorted(STD_TOL))
def test_exact_predictor_reproduces_the_data(solver, nfe):
    mean_err, std_err = _errors(_sample(solver, nfe))
    assert abs(mean_err) < MEAN_TOL, mean_err
    assert abs(std_err) < STD_TOL[solver, nfe] + STD_SAMPLING_TOL, std_err


def test_dpm_solver_is_second_order():
    """At NFE 50 DPM-Solver++(2M) is an order of magnitude closer than DDIM (its first-order special case)."""
    ddim, dpm = _errors(_sample("ddim", 50))[1], _errors(_sample("dpm-solver", 50))[1]
    assert abs(dpm) < abs(ddim) / 10, (dpm, ddim)


@pytest.mark.parametrize("solver", ["ddim", "dpm-solver"])
def test_one_step_is_the_posterior_mean(solver):
    """At NFE 1 both solvers jump from t = 999 straight to x̂₀ = E[x₀ | x_T], elementwise. Its spread about μ is
    √ᾱ_T·s²·x_T/(…) ≈ 0.0016·x_T; float32 cancellation in (x − √(1−ᾱ)ε̂)/√ᾱ (1/√ᾱ_T ≈ 157) leaves ≈ 6·10⁻⁵."""
    model = ExactEpsilon(NoiseSchedule(1000, "linear"))
    noise = torch.randn((64, *SHAPE), generator=torch.Generator().manual_seed(1))
    x = sample_dm(model, noise, nfe=1, solver=solver)
    expected = posterior_mean_vp(noise, float(model.schedule.alphas_cumprod()[-1]))
    assert torch.allclose(x.double(), expected, atol=2e-4)
    assert (expected - MU).abs().max() > 20 * 2e-4  # the check resolves the x_T-dependence, not just μ


@pytest.mark.parametrize("solver", ["ddim", "dpm-solver"])
def test_std_error_shrinks_with_nfe(solver):
    """The std collapses at NFE 1 (measured error −0.498) and recovers step by step (NFE 2 −0.43, 5 −0.23,
    20 −0.068 DDIM / −0.022 DPM-Solver++); each step up must cut the error by at least 10 %."""
    errs = [abs(_errors(_sample(solver, n, 1024))[1]) for n in (1, 2, 5, 20)]
    assert errs[0] > 0.45, errs
    assert all(b < 0.9 * a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.08, errs
