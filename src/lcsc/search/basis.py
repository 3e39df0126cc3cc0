# Structured LCSC coefficient spaces a = B·w (LCSC paper Sec. 6 / App. 0.D "the basin occupies a lower-rank subspace").
"""Coefficient spaces: ``full`` (a = w), ``ema-basis:D`` (D−1 EMA profiles + the last checkpoint) and ``spline:D``
(D smooth B-spline bumps over the checkpoint index). Every basis column sums to 1, so Σw = 1 gives Σa = 1. Anchors (rows
of the stack after the window: EMA states and other given weights) are free coordinates of their own in every space."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lcsc.errors import ConfigError
from lcsc.rates import half_life_to_rate
from lcsc.search.hyperplane import exact_sum_to_one, sum_zero_basis

__all__ = ["SPACE_KINDS", "CoefficientSpace", "parse_space", "ema_profile_basis", "spline_basis"]

SPACE_KINDS = ("full", "ema-basis", "spline")
EMA_BASIS_MAX_WINDOWS = 4.0  # the longest EMA profile's half-life, in windows


def ema_profile_basis(K: int, D: int, interval: int) -> tuple[np.ndarray, list[str]]:
    """K×D: D−1 EMA profiles (half-lives geometric from one interval to 4 windows) and the last checkpoint."""
    from lcsc.search.space import ema_coefficients

    window = K * interval
    half_lives = np.geomspace(interval, EMA_BASIS_MAX_WINDOWS * window, D - 1) if D > 2 else np.array([window / 2])
    cols = [ema_coefficients(K, half_life_to_rate(float(h)), interval) for h in half_lives]
    cols.append(np.eye(K)[-1])
    return np.stack(cols, axis=1), [f"ema-hl{h:.4g}" for h in half_lives] + ["last"]


def spline_basis(K: int, D: int) -> tuple[np.ndarray, list[str]]:
    """K×D: clamped cubic (or lower-degree, for small D) B-splines over the checkpoint index, columns scaled to Σ = 1."""
    from scipy.interpolate import BSpline

    degree = min(3, D - 1)
    inner = np.linspace(0.0, K - 1.0, D - degree + 1)
    knots = np.concatenate([np.zeros(degree), inner, np.full(degree, K - 1.0)])
    design = BSpline.design_matrix(np.arange(K, dtype=np.float64), knots, degree).toarray()
    return design / design.sum(axis=0, keepdims=True), [f"bump{j}" for j in range(D)]


def parse_space(spec: str) -> tuple[str, int | None]:
    """``"full"`` → ("full", None); ``"ema-basis:8"`` → ("ema-basis", 8); bad names and D are one clear error."""
    kind, _, dim = spec.strip().lower().partition(":")
    if kind not in SPACE_KINDS:
        raise ConfigError(f"--space {spec!r}: unknown space; choose full, ema-basis:D or spline:D")
    if kind == "full":
        if dim:
            raise ConfigError(f"--space {spec!r}: the full space takes no dimension")
        return kind, None
    try:
        d = int(dim)
    except ValueError:
        raise ConfigError(f"--space {spec!r}: expected {kind}:D with an integer D >= 2") from None
    if d < 2:
        raise ConfigError(f"--space {spec!r}: D = {d} must be >= 2")
    return kind, d


@dataclass(frozen=True)
class CoefficientSpace:
    """a = B·w per group; ``w`` is what optimisers search (G×D, Σw = 1 per group), ``a`` what merging uses (G×K).

    ``K`` counts every row, the last ``anchors`` of them anchors: the basis is the window's structured basis beside an
    identity block for the anchors, so D = (the space's D) + anchors and each anchor alone is exactly representable.
    """

    spec: str
    K: int
    G: int = 1
    interval: int = 1
    anchors: int = 0

    def __post_init__(self) -> None:
        kind, d = parse_space(self.spec)
        if not 0 <= self.anchors < self.K:
            raise ConfigError(f"{self.anchors} anchors leave no window checkpoint among the {self.K} rows")
        if d is not None and d > self.K_window:
            raise ConfigError(f"--space {self.spec!r}: D = {d} exceeds the {self.K_window} checkpoints")

    @property
    def K_window(self) -> int:  # noqa: N802
        return self.K - self.anchors

    @property
    def kind(self) -> str:
        return parse_space(self.spec)[0]

    @property
    def D(self) -> int:  # noqa: N802
        d = parse_space(self.spec)[1]
        return self.K if d is None else d + self.anchors

    @cached_property
    def _basis(self) -> tuple[np.ndarray, list[str]]:
        if self.kind == "full":
            return np.eye(self.K), [f"ckpt{k}" for k in range(self.K_window)] + \
                [f"anchor{j}" for j in range(self.anchors)]
        d = self.D - self.anchors
        if self.kind == "ema-basis":
            window, names = ema_profile_basis(self.K_window, d, self.interval)
        else:
            window, names = spline_basis(self.K_window, d)
        basis = np.zeros((self.K, self.D))
        basis[:self.K_window, :d] = window
        basis[self.K_window:, d:] = np.eye(self.anchors)
        return basis, names + [f"anchor{j}" for j in range(self.anchors)]

    @property
    def basis(self) -> np.ndarray:
        """The K×D basis (each column sums to 1)."""
        return self._basis[0]

    @property
    def column_names(self) -> list[str]:
        return list(self._basis[1])

    def to_coefficients(self, w: np.ndarray) -> np.ndarray:
        """(G, D) → (G, K): B·w per group, nudged by a few ulps so that numpy's ``a.sum(axis=-1)`` is exactly 1.0
        (:func:`exact_sum_to_one`; the identity, bit for bit, in the full space). Deterministic: the same w always
        gives the same bits."""
        w = np.asarray(w, dtype=np.float64).reshape(self.G, self.D)
        return w.copy() if self.kind == "full" else exact_sum_to_one(w @ self.basis.T)

    def project(self, a: np.ndarray) -> tuple[np.ndarray, float]:
        """The w (Σw = 1 per group) whose B·w is closest to ``a`` in least squares, and the largest residual norm.
        Anchor coefficients carry over exactly (an anchor alone stays exactly itself)."""
        a = np.asarray(a, dtype=np.float64).reshape(self.G, self.K)
        if self.kind == "full":
            return a.copy(), 0.0
        k_w, d_w = self.K_window, self.D - self.anchors
        B = self.basis[:k_w, :d_w]  # the window's block; anchors map to themselves exactly
        kkt = np.block([[B.T @ B, np.ones((d_w, 1))], [np.ones((1, d_w)), np.zeros((1, 1))]])
        rhs = np.concatenate([a[:, :k_w] @ B, a[:, :k_w].sum(axis=1, keepdims=True)], axis=1)
        w = np.concatenate([np.linalg.lstsq(kkt, rhs.T, rcond=None)[0][:d_w].T, a[:, k_w:]], axis=1)
        w = exact_sum_to_one(w / w.sum(axis=1, keepdims=True))
        return w, float(np.linalg.norm(w @ self.basis.T - a, axis=1).max())

    def step_scale(self) -> float:
        """sqrt(tr(QᵀBᵀBQ)/(K−1)): RMS size of Δa = B·Q·z relative to the full space's for the same z (Q spans Σ = 0).

        Optimisers divide a step size given in coefficient units by this, so ``--sigma`` means the same expected
        ‖Δa‖ in every space (1 in the full space).
        """
        if self.kind == "full":
            return 1.0
        BQ = self.basis @ sum_zero_basis(self.D)
        return float(np.sqrt(np.trace(BQ.T @ BQ) / (self.K - 1)))
