# Kernel Inception Distance (Bińkowski et al. 2018, unbiased MMD² with a cubic polynomial kernel).
"""KID: the unbiased estimate of MMD² between two feature sets under k(x, y) = (x·y / d + 1)³, averaged over
random subsets (as in the paper's reference code, torch-fidelity and clean-fid).

:func:`kernel_inception_distance` returns the raw MMD² (the library value, what torch-fidelity and clean-fid return),
in the squared-kernel units of whatever feature space it is given. Everything lcsc shows people (``lcsc eval``, the
demo report, their JSON) scales it at reporting time to KID×10³ (``kid_x1e3``, see
:data:`lcsc.metrics.evaluate.KID_SCALE`) and names the feature space, since the value means nothing without both."""

from __future__ import annotations

from typing import Any

import numpy as np

from lcsc.errors import ConfigError
from lcsc.metrics.frechet import as_feature_matrix

__all__ = ["kernel_inception_distance", "kid_subset_indices", "polynomial_mmd2_unbiased"]


def _kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of two equal-size samples (m×d each, m ≥ 2) under the cubic polynomial kernel.

    MMD²_u = Σ_{i≠j} k(x_i, x_j) / (m(m−1)) + Σ_{i≠j} k(y_i, y_j) / (m(m−1)) − 2 Σ_{i,j} k(x_i, y_j) / m².
    """
    m = x.shape[0]
    k_xx, k_yy, k_xy = _kernel(x, x), _kernel(y, y), _kernel(x, y)
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kid_subset_indices(n_a: int, n_b: int, num_subsets: int, subset_size: int, seed: int = 0
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """KID's subsets: per subset, min(``subset_size``, n_a, n_b) rows of a, then of b, drawn without replacement by
    ``np.random.default_rng(seed)`` (shared with :func:`lcsc.metrics.differentiable.kid_torch`)."""
    if num_subsets < 1:
        raise ConfigError(f"KID num_subsets must be >= 1; got {num_subsets}")
    if subset_size < 2:
        raise ConfigError(f"KID subset_size must be >= 2; got {subset_size}")
    m = min(subset_size, n_a, n_b)
    rng = np.random.default_rng(seed)
    return [(rng.choice(n_a, m, replace=False), rng.choice(n_b, m, replace=False)) for _ in range(num_subsets)]


def kernel_inception_distance(features_a: Any, features_b: Any, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """(mean, std) over ``num_subsets`` subsets of the unbiased polynomial-kernel MMD² (raw, not ×10³).

    Each subset takes min(``subset_size``, len(a), len(b)) rows of ``a`` and, independently, of ``b``, drawn
    without replacement by ``np.random.default_rng(seed)``; computed in float64. Passing one finite set as both
    ``a`` and ``b`` gives a small negative value, −2(mean k(x, x) − mean k(x, x'))/N in expectation, since a row can
    land in both subsets; two independent samples of one distribution give 0 in expectation.
    """
    a = as_feature_matrix(features_a, "KID features_a", min_rows=2)
    b = as_feature_matrix(features_b, "KID features_b", min_rows=2)
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"KID features have different dimensions: {a.shape[1]} vs {b.shape[1]}")
    values = np.array([polynomial_mmd2_unbiased(a[ia], b[ib])
                       for ia, ib in kid_subset_indices(len(a), len(b), num_subsets, subset_size, seed)])
    return float(values.mean()), float(values.std())
