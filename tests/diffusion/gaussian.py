# Closed-form DDPM ε-predictor, EDM denoiser (Karras et al. 2022, Eq. 2) and PF-ODE consistency map for Gaussian data.
"""Test doubles with the project's model interfaces whose outputs are exact for data x₀ ~ N(μ, s²I).

Per dimension, with x₀ = μ + s·n (n ~ N(0, 1)):

* VP / DDPM: x_t = √ᾱ x₀ + √(1−ᾱ) ε. (ε, x_t) are jointly Gaussian with Cov = √(1−ᾱ), Var x_t = ᾱs² + 1 − ᾱ and
  E x_t = √ᾱ μ, so E[ε | x_t] = √(1−ᾱ)·(x_t − √ᾱ μ)/(ᾱs² + 1 − ᾱ).
* EDM: x = x₀ + σ·n', so D(x, σ) = E[x₀ | x] = μ + s²/(s² + σ²)·(x − μ).
* PF-ODE dx/dσ = (x − D(x, σ))/σ = σ(x − μ)/(s² + σ²): (x − μ)/√(s² + σ²) is constant along every trajectory, so
  the ODE carries level σ to level σ' by x ↦ μ + √(s² + σ'²)/√(s² + σ²)·(x − μ). The consistency function to σ' = 0
  is μ + s/√(s² + σ²)·(x − μ); with the CM boundary f(x, σ_min) = x the exact map is the one to σ' = σ_min, whose
  outputs are N(μ, s² + σ_min²) — for σ_min = 0.002, s = 0.5 a std 4·10⁻⁶ above s, far below any tolerance here.

Everything is computed in float64 and returned in the input's dtype.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn

from lcsc.diffusion.schedule import NoiseSchedule

__all__ = ["MU", "S", "ExactEpsilon", "ExactDenoiser", "ExactConsistency", "posterior_mean_vp", "flow"]

MU, S = 0.3, 0.5  # the data: x₀ ~ N(MU, S²) independently in every pixel


def posterior_mean_vp(x_t: torch.Tensor, alpha_bar: float, mu: float = MU, s: float = S) -> torch.Tensor:
    """E[x₀ | x_t] = (√ᾱ s² x_t + (1 − ᾱ) μ)/(ᾱ s² + 1 − ᾱ) (what one DDIM/DPM-Solver step from x_t returns)."""
    return (math.sqrt(alpha_bar) * s * s * x_t.double() + (1 - alpha_bar) * mu) / (alpha_bar * s * s + 1 - alpha_bar)


def flow(x: torch.Tensor, sigma: torch.Tensor | float, sigma_to: float, mu: float = MU, s: float = S) -> torch.Tensor:
    """The exact PF-ODE solution carried from level ``sigma`` to ``sigma_to`` (float64)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    sigma = sigma.view(-1, *([1] * (x.dim() - 1))) if sigma.dim() else sigma
    return mu + math.sqrt(s * s + sigma_to**2) / (s * s + sigma**2).sqrt() * (x.double() - mu)


class ExactEpsilon(nn.Module):
    """ε̂(x_t, t) = E[ε | x_t] for an lcsc DM ``model(x, t, labels)`` with ``.schedule``; a fractional t reads ᾱ from
    log σ_t interpolated linearly in t (the convention of :class:`lcsc.consistency.EDMTeacher`)."""

    def __init__(self, schedule: NoiseSchedule | None = None, mu: float = MU, s: float = S) -> None:
        super().__init__()
        self.schedule = schedule or NoiseSchedule()
        self.config = SimpleNamespace(kind="dm", num_train_timesteps=self.schedule.num_train_timesteps)
        self.mu, self.s = mu, s
        self.log_sigmas = self.schedule.sigmas().log()

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        t = t.double().clamp(0, len(self.log_sigmas) - 1)
        lo = t.floor().long().clamp(max=len(self.log_sigmas) - 2)
        frac = t - lo
        log_sigma = self.log_sigmas[lo] * (1 - frac) + self.log_sigmas[lo + 1] * frac
        return 1 / (1 + (2 * log_sigma).exp())

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        ab = self.alpha_bar(torch.as_tensor(t).expand(x.shape[0])).view(-1, 1, 1, 1)
        eps = (1 - ab).sqrt() * (x.double() - ab.sqrt() * self.mu) / (ab * self.s**2 + 1 - ab)
        return eps.to(x.dtype)


class ExactDenoiser(nn.Module):
    """The EDM denoiser D(x, σ) = μ + s²/(s² + σ²)·(x − μ), called like a CD teacher: ``D(x, sigma_batch, labels)``."""

    def __init__(self, mu: float = MU, s: float = S) -> None:
        super().__init__()
        self.mu, self.s = mu, s

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        s2 = sigma.double().view(-1, 1, 1, 1) ** 2
        return (self.mu + self.s**2 / (self.s**2 + s2) * (x.double() - self.mu)).to(x.dtype)


class ExactConsistency(nn.Module):
    """The exact CM f(x, σ) = flow from σ to σ_min (so f(x, σ_min) = x), with the ``.config`` that ``sample_cm`` reads."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 mu: float = MU, s: float = S) -> None:
        super().__init__()
        self.config = SimpleNamespace(kind="cm", sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
        self.mu, self.s = mu, s

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return flow(x, sigma, self.config.sigma_min, self.mu, self.s).to(x.dtype)
