# Differentiable FD (Heusel et al. 2017, Eq. 6) and KID (Bińkowski et al. 2018, unbiased cubic-kernel MMD²) in torch.
"""Autograd versions of the sample-quality metrics, for a gradient search that backpropagates through a sampler.

:func:`frechet_distance_torch` and :func:`kid_torch` return the same values as :class:`~lcsc.metrics.frechet.
FrechetReference` and :func:`~lcsc.metrics.kid.kernel_inception_distance` (float64), as scalar tensors with a
gradient in the features; :func:`differentiable_features` computes features with autograd; :func:`smooth_max` and
:func:`combine_terms` merge several normalised metric terms into one loss.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
import torch

from lcsc.errors import ConfigError
from lcsc.metrics.features import FeatureExtractor
from lcsc.metrics.frechet import FrechetReference, as_feature_matrix
from lcsc.metrics.kid import kid_subset_indices

__all__ = ["frechet_distance_torch", "kid_torch", "smooth_max", "combine_terms", "differentiable_features",
           "EIGENVALUE_FLOOR"]

EIGENVALUE_FLOOR = 1e-12
"""Relative floor of the eigenvalues of S Σ S: those at or below ``EIGENVALUE_FLOOR · λ_max`` count as 0."""

# reference → {device: (S, μ_ref, tr Σ_ref)}; weak keys, so a freed reference's tensors go with it
_REFERENCE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _check_features(features: Any, name: str, dim: int | None = None) -> torch.Tensor:
    """``features`` as a 2-D floating tensor with ≥ 2 finite rows (and ``dim`` columns when given)."""
    if not isinstance(features, torch.Tensor):
        raise ConfigError(f"{name} must be a torch tensor (N, D); got {type(features).__name__}")
    if features.dim() != 2 or features.shape[0] < 2 or features.shape[1] < 1:
        raise ConfigError(f"{name} must be N×D with N >= 2 and D >= 1; got shape {tuple(features.shape)}")
    if dim is not None and features.shape[1] != dim:
        raise ConfigError(f"{name} have dimension {features.shape[1]}, the reference {dim}")
    if not features.is_floating_point():
        raise ConfigError(f"{name} must be a floating-point tensor; got {features.dtype}")
    if not bool(torch.isfinite(features.detach()).all()):
        raise ConfigError(f"{name} contain NaN/Inf values (shape {tuple(features.shape)})")
    return features


def _reference_tensors(reference: FrechetReference, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(S, μ_ref, tr Σ_ref) as float64 tensors on ``device``, converted once per reference and device."""
    per_device = _REFERENCE_CACHE.setdefault(reference, {})
    if device not in per_device:
        s = torch.as_tensor(reference.sqrt_sigma, dtype=torch.float64).to(device)
        mu = torch.as_tensor(reference.stats.mu, dtype=torch.float64).to(device)
        per_device[device] = (s, mu, float(reference.trace))
    return per_device[device]


def _sum_sqrt_eigenvalues(m: torch.Tensor) -> torch.Tensor:
    """Σ_i √λ_i of the symmetric PSD matrix ``m`` (symmetrised first), with a gradient that stays finite.

    With floor f = ``EIGENVALUE_FLOOR`` · λ_max (detached; at least the smallest normal float64), eigenvalues λ > f
    contribute √λ (gradient ≤ 1/(2√f)) and the others 0 with zero gradient. The numpy route counts √max(λ, 0), so
    the two differ by less than √f = 10⁻⁶·√λ_max per eigenvalue in (0, f] — in practice only the round-off
    (≈ 10⁻¹⁶·λ_max) of exact zeros, e.g. the centring null vector of the Gram route, where the numpy value carries
    √(round-off) noise that a square root's slope would turn into gradient noise.
    """
    evals = torch.linalg.eigvalsh(0.5 * (m + m.T))
    floor = (EIGENVALUE_FLOOR * evals.detach().max()).clamp(min=torch.finfo(torch.float64).tiny)
    roots = torch.where(evals > floor, evals.clamp(min=floor).sqrt(), torch.zeros_like(evals))
    return roots.sum()


def frechet_distance_torch(features: torch.Tensor, reference: FrechetReference) -> torch.Tensor:
    """FD between the Gaussian fitted to ``features`` (N×D, N ≥ 2, unbiased covariance) and ``reference``.

    A differentiable float64 scalar on ``features``' device, equal to ``reference.distance_features(features)``:
    tr((Σ_ref Σ)^½) = Σ √λ_i(S Σ S) with S = Σ_ref^½, from the D×D matrix S Σ S when N ≥ D, else from the N×N
    Gram matrix Y Yᵀ/(N−1), Y = X_c S. See :func:`_sum_sqrt_eigenvalues` for the eigenvalue floor.
    """
    x = _check_features(features, "FD features", reference.dim).to(torch.float64)
    s, mu_ref, trace_ref = _reference_tensors(reference, x.device)
    n, d = x.shape
    mu = x.mean(dim=0)
    xc = x - mu
    y = xc @ s
    inner = (y @ y.T if n < d else y.T @ y) / (n - 1)
    tr_covmean = _sum_sqrt_eigenvalues(inner)
    diff = mu_ref - mu
    return diff @ diff + trace_ref + (xc * xc).sum() / (n - 1) - 2.0 * tr_covmean


def _cubic_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased cubic-kernel MMD² of two m×d samples (as :func:`lcsc.metrics.kid.polynomial_mmd2_unbiased`)."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    return (sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m)


def kid_torch(features: torch.Tensor, reference_features: np.ndarray | torch.Tensor, num_subsets: int,
              subset_size: int, seed: int = 0) -> torch.Tensor:
    """Mean KID (raw MMD²) of ``kernel_inception_distance(reference_features, features, ...)``, differentiable.

    The same subsets (``np.random.default_rng(seed)``: per subset, reference rows first, then feature rows) and the
    same unbiased estimate, in float64 on ``features``' device; the gradient flows to ``features`` (and to
    ``reference_features`` when it is a tensor that requires one).
    """
    b = _check_features(features, "KID features").to(torch.float64)
    if isinstance(reference_features, torch.Tensor):
        a = _check_features(reference_features, "KID reference features").to(b.device, torch.float64)
    else:
        a = torch.from_numpy(as_feature_matrix(reference_features, "KID reference features", min_rows=2)).to(b.device)
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"KID features have different dimensions: {a.shape[1]} vs {b.shape[1]}")
    values = [_mmd2_unbiased(a[torch.from_numpy(ia).to(b.device)], b[torch.from_numpy(ib).to(b.device)])
              for ia, ib in kid_subset_indices(a.shape[0], b.shape[0], num_subsets, subset_size, seed)]
    return torch.stack(values).mean()


def _check_temperature(temperature: float) -> float:
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"smooth-max temperature must be a positive finite number; got {temperature}")
    return float(temperature)


def smooth_max(values: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """τ·log((1/n) Σ exp(v_i/τ)) = τ·logsumexp(v/τ) − τ·log n over all n entries of ``values``.

    A smooth lower bound of the maximum: max − τ·log n ≤ smooth_max ≤ max, equal to c when every entry is c; its
    gradient is softmax(v/τ) (positive weights summing to 1), defined everywhere.
    """
    tau = _check_temperature(temperature)
    v = values.reshape(-1)
    if v.numel() == 0:
        raise ConfigError("smooth_max of an empty tensor")
    return tau * torch.logsumexp(v / tau, dim=0) - tau * math.log(v.numel())


REDUCTIONS = ("single", "mean", "max")


def combine_terms(terms: list[torch.Tensor], normalizers: list[float], reduce: str,
                  temperature: float = 0.05) -> torch.Tensor:
    """One loss from metric terms: ``"single"`` terms[0]/normalizers[0]; ``"mean"`` the mean of term_i/norm_i;
    ``"max"`` :func:`smooth_max` of term_i/norm_i at ``temperature``. Each term is a scalar tensor; every normaliser
    must be a positive finite number."""
    if reduce not in REDUCTIONS:
        raise ConfigError(f"combine_terms: reduce must be one of {', '.join(REDUCTIONS)}; got {reduce!r}")
    if not terms or len(terms) != len(normalizers):
        raise ConfigError(f"combine_terms needs one normaliser per term and at least one term; got {len(terms)} "
                          f"term(s) and {len(normalizers)} normaliser(s)")
    for i, (t, z) in enumerate(zip(terms, normalizers)):
        if not (isinstance(z, (int, float)) and math.isfinite(z) and z > 0):
            raise ConfigError(f"combine_terms: normaliser {i} must be a positive finite number; got {z!r}")
        if not isinstance(t, torch.Tensor) or t.numel() != 1:
            raise ConfigError(f"combine_terms: term {i} must be a scalar tensor; got "
                              f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    scaled = [t.reshape(()) / float(z) for t, z in zip(terms, normalizers)]
    if reduce == "single":
        return scaled[0]
    stacked = torch.stack(scaled)
    return stacked.mean() if reduce == "mean" else smooth_max(stacked, temperature)


def differentiable_features(extractor: FeatureExtractor, images: torch.Tensor) -> torch.Tensor:
    """(N, D) float32 features of ``images`` (N×C×H×W in [-1, 1]) on ``images``' device, with autograd.

    The no-grad path's steps — batches of ``extractor.batch_size`` on ``extractor.device``, clamped to [-1, 1]
    (zero gradient for pixels outside it) — through ``extractor._forward_differentiable`` when the extractor has one
    (Inception: straight-through 8-bit rounding), else ``extractor._forward``.
    """
    if not isinstance(images, torch.Tensor):
        raise ConfigError(f"{extractor.name}: images must be a torch tensor; got {type(images).__name__}")
    extractor.check(images.detach())
    forward = getattr(extractor, "_forward_differentiable", extractor._forward)
    out = []
    for i in range(0, len(images), extractor.batch_size):
        x = images[i : i + extractor.batch_size].to(extractor.device, torch.float32).clamp(-1, 1)
        out.append(forward(x).float())
    if not out:
        return torch.empty(0, extractor.dim, device=images.device)
    return torch.cat(out).to(images.device)
