# The affine chart of the LCSC constraint Σa = 1 (LCSC paper Eq. 8): w = w₀ + Q·z with Q an orthonormal basis of Σ = 0.
"""Optimisers that take Gaussian steps (CMA-ES) search z ∈ R^{G(D−1)}; every point maps to w with Σw = 1 per group
exactly, and because Q is orthonormal a step of size σ in z is a step of size σ in w (no post-hoc division)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["sum_zero_basis", "Hyperplane", "exact_sum_to_one"]


@lru_cache(maxsize=32)
def _sum_zero_basis(D: int) -> np.ndarray:
    # Helmert-style: column j is (1, …, 1, −j, 0, …)/√(j(j+1)); orthonormal, each column sums to 0.
    Q = np.zeros((D, D - 1))
    for j in range(1, D):
        Q[:j, j - 1] = 1.0
        Q[j, j - 1] = -float(j)
        Q[:, j - 1] /= np.sqrt(j * (j + 1.0))
    Q.setflags(write=False)
    return Q


def sum_zero_basis(D: int) -> np.ndarray:
    """D×(D−1) orthonormal columns spanning {v : Σv = 0}."""
    return _sum_zero_basis(int(D))


class Hyperplane:
    """Maps z (flat, G·(D−1)) ↔ w (G×D) around ``origin`` (G×D, Σ = 1 per group)."""

    def __init__(self, origin: np.ndarray) -> None:
        self.origin = np.asarray(origin, dtype=np.float64)
        self.G, self.D = self.origin.shape
        self.Q = sum_zero_basis(self.D)

    @property
    def dim(self) -> int:
        return self.G * (self.D - 1)

    def to_w(self, z: np.ndarray) -> np.ndarray:
        """w = w₀ + Q·z per group; each group's last entry is set so the sum is exactly 1 in floating point."""
        w = self.origin + np.asarray(z, dtype=np.float64).reshape(self.G, self.D - 1) @ self.Q.T
        return exact_sum_to_one(w)

    def to_z(self, w: np.ndarray) -> np.ndarray:
        """Coordinates of ``w`` (Σ = 1 per group) in this chart."""
        return ((np.asarray(w, dtype=np.float64).reshape(self.G, self.D) - self.origin) @ self.Q).reshape(-1)


def exact_sum_to_one(w: np.ndarray) -> np.ndarray:
    """Nudge each row's last entry (by a few ulps) so that ``w.sum(axis=1)`` is exactly 1 as numpy computes it."""
    for g in range(w.shape[0]):
        for _ in range(4):
            err = w[g].sum() - 1.0
            if err == 0.0:
                break
            w[g, -1] -= err
    return w
