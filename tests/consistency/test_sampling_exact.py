"""The CM sampler (ours and diffusers' CMStochasticIterativeScheduler) driven by the exact consistency function of
Gaussian data reproduces that data; the sampler's σ grid and re-noising arithmetic by hand; the EDM teacher view of
the exact ε-predictor is the exact EDM denoiser."""

from __future__ import annotations

import math

import pytest
import torch

from lcsc.consistency import EDMTeacher
from lcsc.consistency.sampling import ConsistencySampler, sample_cm
from lcsc.diffusion import NoiseSchedule
from tests.diffusion.gaussian import MU, ExactConsistency, ExactDenoiser, ExactEpsilon, S

SIGMA_MIN, SIGMA_MAX, RHO, SIGMA_DATA = 0.002, 80.0, 7.0, 0.5
N, SHAPE = 4096, (1, 8, 8)
VALUES = N * SHAPE[0] * SHAPE[1] * SHAPE[2]
# 4 standard errors of the pooled mean (≈ 0.001) and std (≈ 0.0007) of VALUES draws; the first step starts from
# σ_max·z instead of the true x_{σ_max} ~ N(μ, s² + σ_max²), which moves the 1-step mean by μ·√(s²+σ_min²)/σ_max
# ≈ 0.002 (later steps re-noise exactly and shrink it). The exact map goes to σ_min, so the target std is
# √(s² + σ_min²) = s + 4·10⁻⁶.
MEAN_TOL = 4 * S / VALUES**0.5 + 0.002
STD_TOL = 4 * S / (2 * VALUES) ** 0.5


def _hand_grid(nfe: int) -> list[float]:
    """The first ``nfe`` levels, from σ_max down, of the (nfe+1)-level Karras grid (EDM Eq. 5), by hand."""
    lo, hi = SIGMA_MIN ** (1 / RHO), SIGMA_MAX ** (1 / RHO)
    return [(hi + k / nfe * (lo - hi)) ** RHO for k in range(nfe)]


def _noise(seed: int = 0, n: int = N) -> torch.Tensor:
    return torch.randn((n, *SHAPE), generator=torch.Generator().manual_seed(seed))


class _Recorder(ExactConsistency):
    """The exact CM that also records every (x, σ) it is called with."""

    def __init__(self) -> None:
        super().__init__(SIGMA_MIN, SIGMA_MAX, RHO)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, sigma, labels=None):
        self.calls.append((x.clone(), sigma.clone()))
        return super().forward(x, sigma, labels)


@pytest.mark.parametrize("nfe", [1, 2, 4])
def test_sampler_grid_and_renoising_by_hand(nfe):
    """Step k calls f at σ_k of the hand grid on x_k = f(x_{k−1}, σ_{k−1}) + √(σ_k² − σ_min²)·z_{k−1}; the result
    is the last f (no noise after it)."""
    model, noise, z = _Recorder(), _noise(n=3), _noise(1, 3 * max(nfe - 1, 1)).view(-1, 3, *SHAPE)[: nfe - 1]
    out = sample_cm(model, noise, None, nfe=nfe, step_noise=z if nfe > 1 else None)
    grid, exact = _hand_grid(nfe), ExactConsistency(SIGMA_MIN, SIGMA_MAX, RHO)
    assert [float(s[0]) for _, s in model.calls] == pytest.approx(grid, rel=1e-6)
    assert torch.equal(model.calls[0][0], noise * SIGMA_MAX)
    for k in range(1, nfe):
        prev = exact(*model.calls[k - 1])
        expected = prev + math.sqrt(grid[k] ** 2 - SIGMA_MIN**2) * z[k - 1]
        assert torch.allclose(model.calls[k][0], expected, rtol=1e-6, atol=1e-6)
    assert len(model.calls) == nfe and torch.allclose(out, exact(*model.calls[-1]), atol=1e-7)


@pytest.mark.parametrize("nfe", [1, 2, 3, 4])
def test_exact_consistency_function_reproduces_the_data(nfe):
    """Measured (seed 0): mean error −0.003/−0.0006/−0.0007/−0.0005, std error ≤ 0.0008 for 1–4 steps."""
    x = sample_cm(ExactConsistency(SIGMA_MIN, SIGMA_MAX, RHO), _noise(), torch.Generator().manual_seed(1), nfe=nfe)
    assert abs(float(x.double().mean()) - MU) < MEAN_TOL
    assert abs(float(x.double().std()) - math.sqrt(S**2 + SIGMA_MIN**2)) < STD_TOL


def _diffusers_scheduler(nfe: int):
    """diffusers' CM scheduler on our grid: its ``num_train_timesteps`` must be nfe + 1 for its σ levels to be the
    first nfe of our (nfe+1)-level Karras grid (plus σ_min appended); no clipping."""
    from diffusers import CMStochasticIterativeScheduler

    sched = CMStochasticIterativeScheduler(num_train_timesteps=nfe + 1, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX,
                                           sigma_data=SIGMA_DATA, rho=RHO, clip_denoised=False)
    sched.set_timesteps(nfe)
    return sched


def _sample_diffusers(noise: torch.Tensor, generator: torch.Generator, nfe: int) -> torch.Tensor:
    """diffusers' loop with the exact *raw* output F = (f − c_skip·x)/c_out: its step() applies the boundary
    c_skip/c_out (σ_data = 0.5) itself, so a model that already returns f(x, σ) must be inverted first."""
    sched, f = _diffusers_scheduler(nfe), ExactConsistency(SIGMA_MIN, SIGMA_MAX, RHO)
    x = noise * sched.init_noise_sigma
    for i, t in enumerate(sched.timesteps):
        sched.scale_model_input(x, t)  # c_in is folded into F below; called for the step index and no warning
        sigma = sched.sigmas[i]
        c_skip, c_out = sched.get_scalings_for_boundary_condition(sigma)
        raw = (f(x, sigma.expand(x.shape[0])) - c_skip * x) / c_out
        x = sched.step(raw, t, x, generator=generator).prev_sample
    return x


@pytest.mark.parametrize("nfe", [1, 2, 4])
def test_diffusers_cm_scheduler_matches_ours_and_the_exact_answer(nfe):
    """Same σ levels, the same samples for the same generator (up to float32 rounding of the c_skip/c_out round
    trip; its extra draw at the last step is multiplied by 0), and the data's mean/std."""
    ours = ConsistencySampler(SIGMA_MIN, SIGMA_MAX, RHO)
    ours.set_timesteps(nfe)
    sched = _diffusers_scheduler(nfe)
    assert sched.sigmas[:-1].tolist() == pytest.approx(ours.timesteps.tolist(), rel=1e-6)
    assert float(sched.sigmas[-1]) == pytest.approx(SIGMA_MIN)
    noise = _noise()
    theirs = _sample_diffusers(noise, torch.Generator().manual_seed(1), nfe)
    mine = sample_cm(ExactConsistency(SIGMA_MIN, SIGMA_MAX, RHO), noise, torch.Generator().manual_seed(1), nfe=nfe)
    assert torch.allclose(theirs, mine, atol=1e-5)
    assert abs(float(theirs.double().mean()) - MU) < MEAN_TOL
    assert abs(float(theirs.double().std()) - S) < STD_TOL


def test_edm_teacher_of_the_exact_epsilon_is_the_exact_denoiser():
    """D(x, σ) = x − σ·ε̂(x/√(1+σ²), t(σ)) with the exact ε̂ equals μ + s²/(s²+σ²)(x − μ), on and between table steps."""
    schedule = NoiseSchedule(1000, "linear")
    teacher = EDMTeacher(ExactEpsilon(schedule))
    table = schedule.sigmas().float()
    sigma = torch.cat([table[[0, 10, 250, 999]], torch.tensor([0.05, 0.5, 3.0, 40.0])])
    x = MU + torch.randn((len(sigma), *SHAPE), generator=torch.Generator().manual_seed(2)) \
        * (S**2 + sigma.view(-1, 1, 1, 1) ** 2).sqrt()
    assert torch.allclose(teacher(x, sigma), ExactDenoiser()(x, sigma), rtol=1e-4, atol=1e-4)
