# Karras et al. 2022 (EDM) Eq. 5 noise grid; improved-CT curriculum and lognormal levels (Song & Dhariwal 2023, Sec. 3.3–3.5).
"""Noise-level grids and the improved consistency-training discretisation curriculum."""

from __future__ import annotations

import math

import torch

__all__ = ["karras_sigmas", "ict_num_scales", "lognormal_index_probs", "pseudo_huber", "default_huber_c"]


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """n levels σ_1 = σ_min < … < σ_n = σ_max spaced uniformly in σ^{1/ρ} (float64, ascending)."""
    if n < 2:
        return torch.tensor([sigma_max], dtype=torch.float64)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (lo + ramp * (hi - lo)) ** rho


def ict_num_scales(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """N(k) = min(s0·2^⌊k/K'⌋, s1) + 1 with K' = ⌊K / (log2⌊s1/s0⌋ + 1)⌋ (improved CT, Eq. 8)."""
    stages = int(math.log2(max(s1 // s0, 1))) + 1
    k_prime = max(total_steps // stages, 1)
    return min(s0 * 2 ** (step // k_prime), s1) + 1


def lognormal_index_probs(sigmas: torch.Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> torch.Tensor:
    """p(i) ∝ erf((ln σ_{i+1} − P_mean)/(√2 P_std)) − erf((ln σ_i − P_mean)/(√2 P_std)) for i = 0..N−2."""
    cdf = torch.erf((torch.log(sigmas) - p_mean) / (math.sqrt(2.0) * p_std))
    probs = (cdf[1:] - cdf[:-1]).clamp_min(0)
    return probs / probs.sum()


def default_huber_c(dim: int) -> float:
    """c = 0.00054·√d, the pseudo-Huber constant of improved CT for d-dimensional data."""
    return 0.00054 * math.sqrt(dim)


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """Per-sample √(‖a − b‖² + c²) − c."""
    sq = (a - b).float().pow(2).flatten(1).sum(1)
    return (sq + c * c).sqrt() - c
