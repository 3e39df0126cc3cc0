"""CT and CD losses equal values computed by hand from the same random draws; the CD teacher step against the
closed-form PF-ODE of Gaussian data (Euler local error O(h²), Heun O(h³))."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lcsc.consistency.losses import ConsistencyDistillationLoss, ConsistencyTrainingLoss
from tests.diffusion.gaussian import MU, ExactDenoiser, S, flow

SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
P_MEAN, P_STD = -1.1, 2.0
X0 = torch.tensor([[0.9, -0.4, 0.1, 0.7], [-0.8, 0.3, -0.2, 0.5]]).view(2, 1, 2, 2)  # a 2-example batch, d = 4


class _Student(nn.Module):
    """f(x, σ) = a·x + b·σ·tanh(x): x₀ does not cancel from f(x₀ + σ₁z) − f(x₀ + σ₂z)."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(a)), nn.Parameter(torch.tensor(b))
        self.config = SimpleNamespace(sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rho=RHO)

    def forward(self, x, sigma, labels=None):
        return self.a * x + self.b * sigma.view(-1, 1, 1, 1) * torch.tanh(x)


def _f(a: float, b: float, x: torch.Tensor, sigma: float) -> torch.Tensor:
    return a * x + b * sigma * torch.tanh(x)


def _karras(n: int) -> list[float]:
    lo, hi = SIGMA_MIN ** (1 / RHO), SIGMA_MAX ** (1 / RHO)
    return [(lo + k / (n - 1) * (hi - lo)) ** RHO for k in range(n)]


def _distance(pred: torch.Tensor, target: torch.Tensor, c: float) -> float:
    """Pseudo-Huber √(‖pred − target‖² + c²) − c; for c = 0 the per-example mean square (the library's L2 option)."""
    sq = float(((pred - target) ** 2).sum())
    return sq / pred.numel() if c == 0 else math.sqrt(sq + c * c) - c


# CT at step k = 30 of K = 100 with s0 = 10, s1 = 1280: K' = ⌊100 / (log2 128 + 1)⌋ = 12, N = 10·2^⌊30/12⌋ + 1 = 41.
CT_STEP, CT_TOTAL, CT_N = 30, 100, 41


def _hand_ct(seed: int, c: float, online: tuple[float, float], target: tuple[float, float]) -> float:
    sig = _karras(CT_N)
    cdf = [math.erf((math.log(s) - P_MEAN) / (math.sqrt(2) * P_STD)) for s in sig]
    probs = torch.tensor([cdf[k + 1] - cdf[k] for k in range(CT_N - 1)], dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)  # the loss draws the level indices, then z
    idx = torch.multinomial((probs / probs.sum()).float(), 2, replacement=True, generator=gen).tolist()
    z = torch.randn(X0.shape, generator=gen).double()
    total = 0.0
    for b, i in enumerate(idx):
        s_lo, s_hi = sig[i], sig[i + 1]
        pred = _f(*online, X0[b].double() + s_hi * z[b], s_hi)
        tgt = _f(*target, X0[b].double() + s_lo * z[b], s_lo)
        total += _distance(pred, tgt, c) / (s_hi - s_lo)
    return total / 2


@pytest.mark.parametrize("huber_c, c", [(None, 0.00054 * math.sqrt(4)), (0.01, 0.01), (0.0, 0.0)])
def test_ct_loss_equals_the_hand_value(huber_c, c):
    """Seed 3 draws levels 2 and 8 of the 41: λ = 1/(σ₃ − σ₂) ≈ 241 and 1/(σ₉ − σ₈) ≈ 27.7. Hand values: 2.2775
    (default c = 0.00054·√4), 1.6685 (c = 0.01), 0.041531 (c = 0: mean square)."""
    loss_fn = ConsistencyTrainingLoss(CT_TOTAL, 10, 1280, P_MEAN, P_STD, huber_c)
    loss, stats = loss_fn(_Student(1.3, 0.4), X0, None, torch.Generator().manual_seed(3), CT_STEP)
    assert stats["num_scales"] == CT_N
    assert float(loss.detach()) == pytest.approx(_hand_ct(3, c, (1.3, 0.4), (1.3, 0.4)), rel=1e-5)


def test_ct_loss_uses_the_target_network():
    """θ⁻ ≠ θ: the target term comes from ``target_model`` (hand value 65.038 against 1.6685 with θ⁻ = θ)."""
    online, target = _Student(1.3, 0.4), _Student(0.9, -0.2)
    loss_fn = ConsistencyTrainingLoss(CT_TOTAL, 10, 1280, P_MEAN, P_STD, 0.01)
    with_target = float(loss_fn(online, X0, None, torch.Generator().manual_seed(3), CT_STEP, target)[0].detach())
    assert with_target == pytest.approx(_hand_ct(3, 0.01, (1.3, 0.4), (0.9, -0.2)), rel=1e-5)
    assert with_target != pytest.approx(_hand_ct(3, 0.01, (1.3, 0.4), (1.3, 0.4)), rel=1e-2)


CD_N = 6


def _d(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(x − D(x, σ))/σ for the Gaussian teacher D = μ + s²/(s²+σ²)(x − μ), i.e. σ(x − μ)/(s² + σ²)."""
    return sigma * (x - MU) / (S * S + sigma * sigma)


def _hand_cd(seed: int, solver: str, c: float, online, target) -> float:
    sig = _karras(CD_N)
    gen = torch.Generator().manual_seed(seed)  # the loss draws n ~ U{0..N−2}, then z
    idx = torch.randint(0, CD_N - 1, (2,), generator=gen).tolist()
    z = torch.randn(X0.shape, generator=gen).double()
    total = 0.0
    for b, i in enumerate(idx):
        s_lo, s_hi = sig[i], sig[i + 1]
        x_hi = X0[b].double() + s_hi * z[b]
        d = _d(x_hi, s_hi)
        x_lo = x_hi + (s_lo - s_hi) * d  # Euler
        if solver == "heun":
            x_lo = x_hi + (s_lo - s_hi) * (d + _d(x_lo, s_lo)) / 2
        total += _distance(_f(*online, x_hi, s_hi), _f(*target, x_lo, s_lo), c)
    return total / 2


@pytest.mark.parametrize("solver", ["heun", "euler"])
def test_cd_loss_equals_the_hand_value(solver):
    """Seed 2 draws n = 3 and 2 of the 6 levels (σ 24.4 → 5.84 and 5.84 → 0.97): one teacher step from σ_{n+1} to
    σ_n, the student at σ_{n+1} against the target at σ_n, pseudo-Huber, no λ weighting. Hand values: Heun 45.966,
    Euler 46.562 (with the target network 53.235 / 53.612)."""
    online, target = _Student(1.3, 0.4), _Student(0.9, -0.2)
    loss_fn = ConsistencyDistillationLoss(ExactDenoiser(), CD_N, solver, None)
    c = 0.00054 * math.sqrt(4)
    loss, _ = loss_fn(online, X0, None, torch.Generator().manual_seed(2), 0)
    assert float(loss.detach()) == pytest.approx(_hand_cd(2, solver, c, (1.3, 0.4), (1.3, 0.4)), rel=1e-5)
    with_target = float(loss_fn(online, X0, None, torch.Generator().manual_seed(2), 0, target)[0].detach())
    assert with_target == pytest.approx(_hand_cd(2, solver, c, (1.3, 0.4), (0.9, -0.2)), rel=1e-5)
    other = "euler" if solver == "heun" else "heun"
    assert float(loss.detach()) != pytest.approx(_hand_cd(2, other, c, (1.3, 0.4), (1.3, 0.4)), rel=1e-3)


@pytest.mark.parametrize("solver, order", [("euler", 2), ("heun", 3)])
def test_teacher_step_converges_to_the_exact_ode(solver, order):
    """One step σ = 1 → 1 − h against the closed-form flow: halving h divides the error by ≈ 2^order (measured
    4.4 and 9.3 for h 0.2 → 0.1)."""
    x = MU + 2.0 * torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    loss_fn = ConsistencyDistillationLoss(ExactDenoiser(), CD_N, solver)
    errs = []
    for h in (0.2, 0.1):
        step = loss_fn.teacher_step(x, torch.tensor([1.0]), torch.tensor([1.0 - h]), None)
        errs.append(float((step.double() - flow(x, 1.0, 1.0 - h)).abs().max()))
    assert 0.75 * 2**order < errs[0] / errs[1] < 1.5 * 2**order, errs
