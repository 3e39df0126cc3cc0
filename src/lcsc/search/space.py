"""LCSC search space (Liu et al., Eq. 8): coefficients with Σa = 1 per group, EMA-derived initial individuals."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lcsc.errors import ConfigError
from lcsc.rates import half_life_to_rate

__all__ = ["SearchSpace", "ema_coefficients", "ema_continuation", "half_life_to_rate", "default_half_lives",
           "MIN_ABS_SUM"]

MIN_ABS_SUM = 0.1


def ema_coefficients(K: int, rate: float, interval: int) -> np.ndarray:
    """Coefficients an EMA with per-iteration rate γ gives K checkpoints saved ``interval`` iterations apart.

    With θ constant over the I iterations that end at each checkpoint (the checkpoint stands for them) and the EMA
    started at the first checkpoint, the EMA at the last step is Σₖ aₖθₖ with
    aₖ = γ^{(K−k)I}(1 − γ^I) for k = 2..K and a₁ = γ^{(K−1)I} (the first checkpoint also carries the EMA's
    initial mass). The coefficients sum to exactly 1.
    """
    if K < 1 or interval < 1:
        raise ConfigError(f"ema_coefficients needs K >= 1 and interval >= 1 (got K={K}, interval={interval})")
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"EMA rate {rate} must be in [0, 1)")
    decay = rate**interval
    ages = np.arange(K - 1, -1, -1, dtype=np.float64)  # checkpoint k is (K-k) intervals old
    a = decay**ages * (1.0 - decay)
    a[0] = decay ** (K - 1)
    return a


def ema_continuation(K: int, rate: float, interval: int) -> tuple[np.ndarray, float]:
    """An online EMA continued from its snapshot at the window's start: (window coefficients, start coefficient).

    The EMA update e_t = γ e_{t−1} + (1 − γ) θ_t unrolled over the window gives
    e_end = γ^{KI} e_start + Σₖ γ^{(K−k)I}(1 − γ^I) θₖ when θ is constant over the I iterations that end at each
    checkpoint. With ``interval`` 1 that is the update itself (exact up to float rounding); with I > 1 only the I − 1
    unsaved iterates between checkpoints are approximated (by the checkpoint that ends their interval). The
    coefficients sum to 1.
    """
    a = ema_coefficients(K, rate, interval)
    decay = rate**interval
    a[0] = decay ** (K - 1) * (1.0 - decay)
    return a, float(decay**K)


def default_half_lives(K: int, interval: int, count: int = 6) -> list[float]:
    """Half-lives (iterations) geometrically spaced from one interval to half the window, the EMA init grid."""
    window = K * interval
    lo, hi = float(interval), max(float(interval), window / 2.0)
    if count == 1 or hi == lo:
        return [hi]
    return [float(lo * (hi / lo) ** (i / (count - 1))) for i in range(count)]


@dataclass(frozen=True)
class SearchSpace:
    """Individuals are (G, K) arrays: one coefficient vector per group, each summing to 1 (Σa = 1)."""

    K: int
    G: int = 1
    convex: bool = False

    def normalize(self, child: np.ndarray) -> np.ndarray | None:
        """Divide each group by its sum (convex: clip to ≥ 0 first); None when a |sum| < 0.1 (redraw)."""
        child = np.asarray(child, dtype=np.float64).reshape(self.G, self.K)
        if self.convex:
            child = np.clip(child, 0.0, None)
        sums = child.sum(axis=1, keepdims=True)
        if np.any(np.abs(sums) < MIN_ABS_SUM) or not np.all(np.isfinite(sums)):
            return None
        return child / sums

    def validate(self, individual: np.ndarray, source: str = "initial individual") -> np.ndarray:
        """Check a caller-given individual's shape and finiteness; return it as a normalised (G, K) array."""
        arr = np.asarray(individual, dtype=np.float64)
        if arr.ndim == 1 and self.G > 1:
            arr = np.tile(arr, (self.G, 1))
        if arr.size != self.G * self.K or not np.all(np.isfinite(arr)):
            raise ConfigError(
                f"{source}: expected {self.G}×{self.K} finite coefficients, got shape {arr.shape}"
            )
        out = self.normalize(arr)
        if out is None:
            raise ConfigError(
                f"{source}: a group's coefficients sum to ~0 (|Σa| < {MIN_ABS_SUM}); cannot normalise"
            )
        return out

    def ema_individuals(self, interval: int, half_lives: list[float]) -> dict[str, np.ndarray]:
        """EMA-derived initial individuals, named by half-life, the same vector for every group."""
        out = {}
        for h in half_lives:
            a = ema_coefficients(self.K, half_life_to_rate(h), interval)
            name = f"ema-hl{h:g}" if not math.isclose(h, round(h)) else f"ema-hl{int(round(h))}"
            out[name] = self.validate(np.tile(a, (self.G, 1)), name)
        return out
