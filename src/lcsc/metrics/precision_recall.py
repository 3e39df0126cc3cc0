# Improved precision and recall (Kynkäänniemi et al. 2019, Eqs. 1–3, k = 3).
"""Precision: the fraction of generated features inside the k-NN manifold of the real ones (the union of balls
around each real feature with radius its distance to its k-th nearest real neighbour, itself excluded). Recall:
the fraction of real features inside the manifold of the generated ones.

Squared distances come from ‖x‖² + ‖y‖² − 2 x·y in float64 with torch, one batch of rows at a time, so memory
stays at batch_size × max(N, M); the fake–real block is computed once and serves both precision and recall.
"""

from __future__ import annotations

from typing import Any

import torch

from lcsc.errors import ConfigError
from lcsc.metrics.frechet import as_feature_matrix

__all__ = ["precision_recall", "knn_radii_sq"]

_REL_TOL = 1e-9  # round-off allowance on squared radii (a point on its own ball's boundary still counts)


def _sq_dists(x: torch.Tensor, y: torch.Tensor, x_sq: torch.Tensor, y_sq: torch.Tensor) -> torch.Tensor:
    return (x_sq[:, None] + y_sq[None, :] - 2.0 * (x @ y.T)).clamp_min_(0.0)


def knn_radii_sq(x: torch.Tensor, k: int, batch_size: int = 1024) -> torch.Tensor:
    """Squared distance from each row of ``x`` to its k-th nearest other row (self excluded, duplicates count)."""
    x_sq = (x * x).sum(dim=1)
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        d2 = _sq_dists(x[rows], x, x_sq[rows], x_sq)
        # the k+1-th smallest includes the point itself (distance 0) as the first
        out[rows] = torch.kthvalue(d2, k + 1, dim=1).values
    return out


def _tensor(features: Any, name: str, k: int, device: torch.device) -> torch.Tensor:
    arr = as_feature_matrix(features, name, min_rows=1)
    if arr.shape[0] <= k:
        raise ConfigError(f"{name} has {arr.shape[0]} sample(s); precision/recall with k={k} needs more than {k}")
    return torch.from_numpy(arr).to(device)


def precision_recall(real: Any, fake: Any, k: int = 3, batch_size: int = 1024,
                     device: str | torch.device | None = None) -> tuple[float, float]:
    """(precision, recall) of ``fake`` (M×D) against ``real`` (N×D) with k-NN radii; both sets need > k rows."""
    if k < 1:
        raise ConfigError(f"precision/recall k must be >= 1; got {k}")
    if batch_size < 1:
        raise ConfigError(f"precision/recall batch_size must be >= 1; got {batch_size}")
    dev = torch.device(device or "cpu")
    r = _tensor(real, "precision/recall real features", k, dev)
    f = _tensor(fake, "precision/recall fake features", k, dev)
    if r.shape[1] != f.shape[1]:
        raise ConfigError(f"precision/recall features have different dimensions: {r.shape[1]} vs {f.shape[1]}")
    r_rad = knn_radii_sq(r, k, batch_size)
    f_rad = knn_radii_sq(f, k, batch_size)
    r_rad = r_rad + _REL_TOL * r_rad.max().clamp_min(1e-300)
    f_rad = f_rad + _REL_TOL * f_rad.max().clamp_min(1e-300)
    r_sq, f_sq = (r * r).sum(dim=1), (f * f).sum(dim=1)
    fake_in_real = torch.zeros(f.shape[0], dtype=torch.bool, device=dev)
    real_in_fake = torch.zeros(r.shape[0], dtype=torch.bool, device=dev)
    for start in range(0, f.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        d2 = _sq_dists(f[rows], r, f_sq[rows], r_sq)  # (B, N): fakes of this batch × all reals
        fake_in_real[rows] = (d2 <= r_rad[None, :]).any(dim=1)
        real_in_fake |= (d2 <= f_rad[rows, None]).any(dim=0)
    return float(fake_in_real.double().mean()), float(real_in_fake.double().mean())
