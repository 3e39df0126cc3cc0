# Fréchet distance between Gaussians (Heusel et al. 2017, Eq. 6; Dowson & Landau 1982).
"""Fréchet distance (FD/FID) between two Gaussians fitted to feature sets.

    FD = ‖μa − μb‖² + tr(Σa) + tr(Σb) − 2 tr((Σa Σb)^{1/2})

:func:`frechet_distance_sqrtm` is the reference formula with a general matrix square root (``scipy.linalg.sqrtm``,
as in pytorch-fid). :class:`FrechetReference` is the fast form for many candidates against one reference: with
S = Σ_ref^{1/2} (symmetric PSD, computed once by an eigendecomposition), Σ_ref Σ = S (S Σ S) S⁻¹ is similar to the
symmetric PSD matrix S Σ S, so tr((Σ_ref Σ)^{1/2}) = Σ_i sqrt(λ_i(S Σ S)) — one symmetric eigenvalue problem per
candidate instead of a Schur-based sqrtm (S Σ S shares its eigenvalues with Σ_ref Σ even when Σ_ref is singular).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcsc.atomic import atomic_path
from lcsc.errors import ConfigError, DataError

__all__ = ["GaussianStats", "FrechetReference", "frechet_distance", "frechet_distance_sqrtm", "as_feature_matrix"]


def as_feature_matrix(features: Any, name: str = "features", min_rows: int = 1) -> np.ndarray:
    """``features`` (numpy array or torch tensor, N×D) as a finite float64 numpy array with at least ``min_rows`` rows."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().to(torch.float64).numpy()
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2:
        raise ConfigError(f"{name} must be a 2-D array (N, D); got shape {tuple(arr.shape)}")
    if arr.shape[0] < min_rows:
        raise ConfigError(f"{name} has {arr.shape[0]} sample(s); at least {min_rows} are needed")
    if arr.shape[1] < 1:
        raise ConfigError(f"{name} has feature dimension 0 (shape {tuple(arr.shape)})")
    if not np.isfinite(arr).all():
        bad = int(arr.size - np.isfinite(arr).sum())
        raise ConfigError(f"{name} contains {bad} NaN/Inf value(s) (shape {tuple(arr.shape)})")
    return arr


@dataclass(frozen=True)
class GaussianStats:
    """Mean ``mu`` (D,), covariance ``sigma`` (D, D) — both float64 — and the sample count ``n``."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    def __post_init__(self) -> None:
        mu = np.asarray(self.mu, dtype=np.float64)
        sigma = np.asarray(self.sigma, dtype=np.float64)
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ConfigError(f"Gaussian statistics: mu has shape {mu.shape} and sigma {sigma.shape}; "
                              "expected (D,) and (D, D)")
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise ConfigError(f"Gaussian statistics (D={mu.shape[0]}) contain NaN/Inf values")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "n", int(self.n))

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    @classmethod
    def from_features(cls, features: Any) -> GaussianStats:
        """Sample mean and unbiased covariance (``np.cov``) of N×D features, N ≥ 2, computed in float64."""
        x = as_feature_matrix(features, "features", min_rows=1)
        if x.shape[0] < 2:
            raise ConfigError(f"a covariance needs at least 2 feature vectors; got {x.shape[0]}")
        return cls(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False), n=x.shape[0])

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``mu``, ``sigma`` and ``n`` to an ``.npz`` file atomically (no pickles) and return the path."""
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, mu=self.mu, sigma=self.sigma, n=np.int64(self.n))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> GaussianStats:
        """Read statistics written by :meth:`save`; a missing or damaged file is a :class:`DataError`."""
        if not Path(path).is_file():
            raise DataError(f"Gaussian statistics file {str(path)!r} does not exist")
        try:
            z = np.load(path, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with z:
                mu, sigma, n = z["mu"], z["sigma"], int(z["n"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"cannot read Gaussian statistics from {str(path)!r}: {e}") from e
        try:
            return cls(mu=mu, sigma=sigma, n=n)
        except ConfigError as e:
            raise DataError(f"Gaussian statistics file {str(path)!r} is inconsistent: {e}") from e


def _check_dims(a: GaussianStats, b: GaussianStats) -> None:
    if a.dim != b.dim:
        raise ConfigError(f"Fréchet distance between statistics of different dimensions: {a.dim} vs {b.dim}")


def frechet_distance_sqrtm(a: GaussianStats, b: GaussianStats, eps: float = 1e-6) -> float:
    """Reference FD with ``scipy.linalg.sqrtm(Σa Σb)`` (pytorch-fid's recipe).

    If the square root is not finite, ``eps·I`` is added to both covariances and it is retried; the real part of
    the (possibly complex, from round-off) square root is used.
    """
    import scipy.linalg  # here, not at import: scipy costs ~0.5 s at the start of every lcsc process

    _check_dims(a, b)
    diff = a.mu - b.mu
    covmean = scipy.linalg.sqrtm(a.sigma @ b.sigma)
    if not np.isfinite(covmean).all():
        offset = np.eye(a.dim) * eps
        covmean = scipy.linalg.sqrtm((a.sigma + offset) @ (b.sigma + offset))
    tr_covmean = float(np.trace(np.real(covmean)))
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_covmean)


class FrechetReference:
    """FD of many statistics against one reference, with S = Σ_ref^{1/2} computed once.

    ``distance`` costs two D×D products and one symmetric eigenvalue solve (``np.linalg.eigvalsh``);
    ``distance_features`` of N < D samples one N×D×D product and an N×N solve.
    """

    def __init__(self, reference: GaussianStats) -> None:
        self.stats = reference
        evals, evecs = np.linalg.eigh(reference.sigma)
        root = np.sqrt(np.clip(evals, 0.0, None))
        self.sqrt_sigma: np.ndarray = (evecs * root) @ evecs.T
        self.trace: float = float(np.trace(reference.sigma))

    @property
    def dim(self) -> int:
        return self.stats.dim

    def trace_sqrt_product(self, sigma: np.ndarray) -> float:
        """tr((Σ_ref Σ)^{1/2}) = Σ_i sqrt(max(λ_i(S Σ S), 0))."""
        s = self.sqrt_sigma
        m = s @ (sigma @ s)
        m = 0.5 * (m + m.T)
        evals = np.linalg.eigvalsh(m)
        return float(np.sqrt(np.clip(evals, 0.0, None)).sum())

    def distance(self, stats: GaussianStats) -> float:
        """FD between the reference and ``stats``."""
        _check_dims(self.stats, stats)
        diff = self.stats.mu - stats.mu
        tr_covmean = self.trace_sqrt_product(stats.sigma)
        return float(diff @ diff + self.trace + np.trace(stats.sigma) - 2.0 * tr_covmean)

    def distance_features(self, features: Any) -> float:
        """FD between the reference and the Gaussian fitted to ``features`` (N×D, N ≥ 2).

        With fewer samples than dimensions (N < D, e.g. a few hundred Inception features), Σ = XᵀX/(N−1) for the
        centred features X, so S Σ S = YᵀY/(N−1) with Y = X S, whose non-zero eigenvalues are those of the N×N
        matrix YYᵀ/(N−1): the same FD from one N×D×D product and an N×N eigenvalue solve, not D×D ones."""
        x = as_feature_matrix(features, "features", min_rows=2)
        n, d = x.shape
        if n >= d or d != self.dim:
            return self.distance(GaussianStats.from_features(x))
        mu = x.mean(axis=0)
        xc = x - mu
        y = xc @ self.sqrt_sigma
        gram = (y @ y.T) / (n - 1)
        evals = np.linalg.eigvalsh(0.5 * (gram + gram.T))
        tr_covmean = float(np.sqrt(np.clip(evals, 0.0, None)).sum())
        diff = self.stats.mu - mu
        return float(diff @ diff + self.trace + (xc * xc).sum() / (n - 1) - 2.0 * tr_covmean)


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """FD between two Gaussians by the eigenvalue route (``FrechetReference(a).distance(b)``)."""
    return FrechetReference(a).distance(b)
