# The affine chart of the LCSC constraint Σa = 1 (LCSC paper Eq. 8): w = w₀ + Q·z with Q an orthonormal basis of Σ = 0.
"""Optimisers that take Gaussian steps (CMA-ES) search z ∈ R^{G(D−1)}; every point maps to w with Σw = 1 per group
exactly (numpy's row sum is 1.0, see :func:`exact_sum_to_one`), and because Q is orthonormal a step of size σ in z is a step of size σ in w (no post-hoc division)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lcsc.errors import CoefficientError

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
        """w = w₀ + Q·z per group, nudged by a few ulps so each group's numpy sum is exactly 1.0
        (:func:`exact_sum_to_one`)."""
        w = self.origin + np.asarray(z, dtype=np.float64).reshape(self.G, self.D - 1) @ self.Q.T
        return exact_sum_to_one(w)

    def to_z(self, w: np.ndarray) -> np.ndarray:
        """Coordinates of ``w`` (Σ = 1 per group) in this chart."""
        return ((np.asarray(w, dtype=np.float64).reshape(self.G, self.D) - self.origin) @ self.Q).reshape(-1)


def exact_sum_to_one(w: np.ndarray) -> np.ndarray:
    """Nudge each row of the (G, D) float64 array ``w`` by a few ulps so that its numpy sum is exactly 1.0.

    "Sum" means ``row.sum()``, which for a C-contiguous array is also ``w.sum(axis=-1)`` (numpy's pairwise
    summation; what the journal's coefficients give when read back) — not ``math.fsum``: the exact real sum of the
    entries may differ from 1 by a few ulps. First the last entry absorbs the error (the earlier rule, so the rows it
    made exact keep their bits); when rounding keeps that from landing on 1.0 the last entry, then the others from the
    end, are searched for a float that does (the sum never decreases when one entry grows, so a bisection over the floats
    finds it when it exists). Works in place on C-contiguous float64 input (else on a contiguous copy); returns it.
    Non-finite rows are left as they are.
    """
    w = np.ascontiguousarray(w, dtype=np.float64)
    for g in range(w.shape[0]):
        row = w[g]
        if not np.isfinite(row).all():
            continue
        for _ in range(4):
            err = row.sum() - 1.0
            if err == 0.0:
                break
            row[-1] -= err
        if row.sum() != 1.0 and not any(_solve_entry(row, j) for j in range(len(row) - 1, -1, -1)):
            raise CoefficientError(f"cannot make {row.tolist()} sum to exactly 1.0 by moving one entry")
    return w


def _solve_entry(row: np.ndarray, j: int) -> bool:
    """Set ``row[j]`` to a float that makes ``row.sum() == 1.0`` (True), or restore it when none does (False)."""
    x0, above = row[j], row.sum() > 1.0
    step = abs(row.sum() - 1.0)
    for _ in range(1100):  # bracket: the sum on the other side of 1 (or at 1)
        row[j] = x0 - step if above else x0 + step
        s = row.sum()
        if s == 1.0:
            return True
        if (s > 1.0) != above or not np.isfinite(s):
            break
        step *= 2.0
    lo, hi = _ordered(x0), _ordered(row[j])  # lo: the sum on the start's side; hi: past 1
    while abs(hi - lo) > 1:
        mid = (lo + hi) // 2
        row[j] = _unordered(mid)
        s = row.sum()
        if s == 1.0:
            return True
        lo, hi = (mid, hi) if (s > 1.0) == above else (lo, mid)
    row[j] = x0
    return False


_SIGN = 1 << 63


def _ordered(x: float) -> int:
    """An integer that orders float64s as their values (adjacent floats: adjacent integers; ±0 both 0)."""
    bits = int(np.float64(x).view(np.uint64))
    return bits if bits < _SIGN else -(bits - _SIGN)


def _unordered(k: int) -> np.float64:
    return np.uint64(k if k >= 0 else _SIGN - k).view(np.float64)
