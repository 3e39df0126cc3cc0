"""EMA rate ↔ half-life conversion shared by the trainer's EMAs and the search's EMA-derived initial individuals."""

from __future__ import annotations

from lcsc.errors import ConfigError

__all__ = ["half_life_to_rate"]


def half_life_to_rate(half_life: float) -> float:
    """EMA rate γ whose weight halves after ``half_life`` iterations: γ = 0.5^(1/h)."""
    if half_life <= 0:
        raise ConfigError(f"EMA half-life {half_life} must be > 0 iterations")
    return 0.5 ** (1.0 / half_life)
