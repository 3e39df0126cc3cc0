"""The DDPM ε-loss equals a value computed by hand from the same draws (ᾱ from the DDPM linear β's, by hand)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lcsc.diffusion import DDPMLoss, NoiseSchedule

T = 10
X0 = torch.tensor([[0.9, -0.4, 0.1, 0.7], [-0.8, 0.3, -0.2, 0.5]]).view(2, 1, 2, 2)


class _Eps(nn.Module):
    """ε̂(x, t) = a·x + b·t/T."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(a)), nn.Parameter(torch.tensor(b))

    def forward(self, x, t, labels=None):
        return self.a * x + self.b * t.view(-1, 1, 1, 1) / T


def _hand(seed: int, a: float, b: float, weight=lambda t: 1.0) -> tuple[float, float]:
    """(weighted loss, unweighted MSE): β_k = 10⁻⁴ + k·(0.02 − 10⁻⁴)/(T − 1) (Ho et al. 2020), ᾱ_t = Π_{k≤t}(1 − β_k)."""
    betas = [1e-4 + k * (0.02 - 1e-4) / (T - 1) for k in range(T)]
    alpha_bar = [1.0] * T
    prod = 1.0
    for k, beta in enumerate(betas):
        prod *= 1 - beta
        alpha_bar[k] = prod
    gen = torch.Generator().manual_seed(seed)  # the loss draws t ~ U{0..T−1}, then ε
    ts = torch.randint(0, T, (2,), generator=gen).tolist()
    eps = torch.randn(X0.shape, generator=gen).double()
    weighted = mse = 0.0
    for i, t in enumerate(ts):
        x_t = alpha_bar[t] ** 0.5 * X0[i].double() + (1 - alpha_bar[t]) ** 0.5 * eps[i]
        per = float(((a * x_t + b * t / T - eps[i]) ** 2).mean())
        weighted, mse = weighted + weight(t) * per / 2, mse + per / 2
    return weighted, mse


def test_ddpm_loss_equals_the_hand_value():
    """Seed 5 draws t = 1 and 4 (a different ᾱ per example). Hand value 1.16743."""
    loss, stats = DDPMLoss(NoiseSchedule(T, "linear"))(_Eps(0.6, 0.3), X0, None, torch.Generator().manual_seed(5), 1)
    expected, mse = _hand(5, 0.6, 0.3)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert stats["mse"] == pytest.approx(mse, rel=1e-5)


def test_ddpm_loss_weighting_is_per_example_and_the_mse_stat_is_not():
    """w(t) = 1 + t multiplies each example's MSE before the batch mean (hand value 5.13297); the logged "mse" stays
    unweighted."""
    loss_fn = DDPMLoss(NoiseSchedule(T, "linear"), weighting=lambda t, ac: 1.0 + t.float())
    loss, stats = loss_fn(_Eps(0.6, 0.3), X0, None, torch.Generator().manual_seed(5), 1)
    expected, mse = _hand(5, 0.6, 0.3, weight=lambda t: 1.0 + t)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert stats["mse"] == pytest.approx(mse, rel=1e-5) and expected > 2 * mse
