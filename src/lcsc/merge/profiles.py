# Post-hoc EMA profile algebra: Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models" (EDM2), Sec. 3.1 and App. C.2 (power-profile inner products, least-squares reconstruction).
"""Averaging profiles as densities over training time and the least-squares fit of one by others.

A power-EMA snapshot taken at step t with exponent γ averages the weights with the density
p(τ) = (γ+1) τ^γ / t^(γ+1) on (0, t] (its weight on the step-s weights is exactly ∫_{s−1}^{s} p). For t_a ≤ t_b

    ⟨p_a, p_b⟩ = ∫ p_a p_b dτ = (γ_a+1)(γ_b+1) / ((γ_a+γ_b+1) t_b) · (t_a/t_b)^γ_b.

A discrete target (the step weights q_s of, e.g., an online EMA) is the piecewise-constant density q on (s−1, s];
its inner product with p is Σ_s q_s (F(s) − F(s−1)), F(x) = (x/t)^(γ+1) the profile's cumulative weight. The
reconstruction min_x ‖Σ x_i p_i − q‖² solves G x = b (Gram matrix G, b_i = ⟨p_i, q⟩) in float64.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "MAX_BLOCKS",
    "RCOND",
    "exponential_inner",
    "power_cdf",
    "power_density",
    "power_gram",
    "power_inner",
    "power_norm2",
    "profile_errors",
    "solve_weights",
    "stieltjes_inner",
]

RCOND = 1e-12  # singular values below RCOND × the largest of the (diagonally scaled) Gram matrix are dropped
MAX_BLOCKS = 32_768  # steps are grouped into at most this many blocks when an exponential target is summed
_EXP_CUTOFF = 2.0**-60  # an exponential profile's steps older than this relative weight are left out


def power_density(t: float, gamma: float, tau: np.ndarray) -> np.ndarray:
    """p(τ) = (γ+1) τ^γ / t^(γ+1) on (0, t], 0 after t."""
    tau = np.asarray(tau, dtype=np.float64)
    inside = (tau > 0) & (tau <= t)
    return np.where(inside, (gamma + 1.0) / t * (np.clip(tau, 0.0, t) / t) ** gamma, 0.0)


def power_cdf(t, gamma, x) -> np.ndarray:
    """F(x) = (min(x, t)/t)^(γ+1): the share of the profile (t, γ) on (0, x]; broadcasts."""
    t, gamma, x = (np.asarray(v, dtype=np.float64) for v in (t, gamma, x))
    return (np.clip(x, 0.0, None).clip(max=t) / t) ** (gamma + 1.0)


def power_inner(t_a, gamma_a, t_b, gamma_b) -> np.ndarray:
    """⟨p_a, p_b⟩ of two power profiles in closed form (any order of t_a, t_b; broadcasts)."""
    t_a, g_a, t_b, g_b = (np.asarray(v, dtype=np.float64) for v in (t_a, gamma_a, t_b, gamma_b))
    swap = t_a > t_b
    lo_t, hi_t = np.where(swap, t_b, t_a), np.where(swap, t_a, t_b)
    lo_g, hi_g = np.where(swap, g_b, g_a), np.where(swap, g_a, g_b)
    return (lo_g + 1.0) * (hi_g + 1.0) / ((lo_g + hi_g + 1.0) * hi_t) * (lo_t / hi_t) ** hi_g


def power_norm2(t, gamma) -> np.ndarray:
    """‖p‖² = (γ+1)² / ((2γ+1) t)."""
    return power_inner(t, gamma, t, gamma)


def power_gram(t: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Gram matrix G_ij = ⟨p_i, p_j⟩ of profiles (t_i, γ_i)."""
    t, gamma = np.asarray(t, dtype=np.float64), np.asarray(gamma, dtype=np.float64)
    return power_inner(t[:, None], gamma[:, None], t[None, :], gamma[None, :])


def stieltjes_inner(edges: np.ndarray, q: np.ndarray, t: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """⟨p_i, q⟩ for a density q equal to ``q[j]`` on (edges[j], edges[j+1]]: Σ_j q_j (F_i(e_{j+1}) − F_i(e_j))."""
    t, gamma = np.asarray(t, dtype=np.float64)[:, None], np.asarray(gamma, dtype=np.float64)[:, None]
    cdf = power_cdf(t, gamma, np.asarray(edges, dtype=np.float64)[None, :])
    return np.diff(cdf, axis=1) @ np.asarray(q, dtype=np.float64)


def _exp_blocks(step: int, half_life: float) -> tuple[np.ndarray, np.ndarray]:
    """Block edges over the steps that matter and each block's mean weight of the renormalised online EMA."""
    beta = 0.5 ** (1.0 / half_life)
    c = -math.expm1(math.log(beta)) / -math.expm1(step * math.log(beta))  # (1 − β) / (1 − β^T)
    start = max(0, step - math.ceil(math.log(_EXP_CUTOFF) / math.log(beta)))
    size = max(1, math.ceil((step - start) / MAX_BLOCKS))
    edges = np.append(np.arange(start, step, size, dtype=np.float64), float(step))
    lengths = np.diff(edges)
    # Σ_{s=a+1}^{b} c β^{T−s} = c β^{T−b} (1 − β^{b−a}) / (1 − β), divided by the block length b − a
    mass = c * beta ** (step - edges[1:]) * -np.expm1(lengths * math.log(beta)) / -math.expm1(math.log(beta))
    return edges, mass / lengths


def exponential_inner(t: np.ndarray, gamma: np.ndarray, step: int, half_life: float) -> tuple[np.ndarray, float]:
    """``(b, ‖q‖²)`` for the target q: an online EMA of rate β = 0.5^(1/H) run for ``step`` steps from the initial
    weights, whose share on those is dropped and the rest renormalised (q_s = (1−β) β^(T−s) / (1 − β^T)).

    Exact (step by step) while the steps that matter fit in :data:`MAX_BLOCKS`; beyond that each block's mean
    weight is used (relative error in b below ~0.2 %)."""
    edges, q = _exp_blocks(int(step), float(half_life))
    beta = 0.5 ** (1.0 / half_life)
    c = -math.expm1(math.log(beta)) / -math.expm1(step * math.log(beta))
    norm2 = c * c * -math.expm1(2 * step * math.log(beta)) / -math.expm1(2 * math.log(beta))
    return stieltjes_inner(edges, q, t, gamma), norm2


def solve_weights(gram: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least-squares x of G x = b (b: a vector or one column per target), scaled to unit diagonal first."""
    d = np.sqrt(np.diag(gram))
    scaled = gram / np.outer(d, d)
    rhs = b / (d[:, None] if b.ndim == 2 else d)
    x, *_ = np.linalg.lstsq(scaled, rhs, rcond=RCOND)
    return x / (d[:, None] if b.ndim == 2 else d)


def profile_errors(gram: np.ndarray, b: np.ndarray, x: np.ndarray, norm2) -> np.ndarray:
    """‖Σ x_i p_i − q‖ / ‖q‖ from G, b and ‖q‖² (columns of b and x are targets, or single vectors)."""
    if b.ndim == 1:
        return profile_errors(gram, b[:, None], x[:, None], np.atleast_1d(norm2))[0]
    sq = np.einsum("ik,ij,jk->k", x, gram, x) - 2.0 * np.einsum("ik,ik->k", x, b) + np.asarray(norm2)
    return np.sqrt(np.clip(sq, 0.0, None) / np.asarray(norm2))
