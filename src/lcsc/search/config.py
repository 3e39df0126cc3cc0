"""SearchConfig: every knob of the LCSC search, frozen, with the defaults documented in the README."""

from __future__ import annotations

from dataclasses import dataclass

from lcsc.errors import ConfigError

__all__ = ["SearchConfig"]


@dataclass(frozen=True)
class SearchConfig:
    """Algorithm 1 settings. The paper gives no defaults; ours:

    - ``sigma`` = 1/K (the scale of a uniform coefficient) when None;
    - ``parents`` M = 10, ``generation_size`` E = 8, ``mix_prob`` p_mix = 0.5;
    - initial population: EMA coefficients for ``init_count`` = 6 half-lives spaced geometrically from one checkpoint
      interval to half the window (``half_lives`` overrides; ``interval`` defaults to the median step gap).

    The budget ``evals`` counts candidates (each initial individual and child is one evaluation; duplicates are
    served from the journal without calling the objective). ``max_time`` (seconds) stops early.
    """

    evals: int = 200
    generation_size: int = 8
    parents: int = 10
    sigma: float | None = None
    mix_prob: float = 0.5
    convex: bool = False
    seed: int = 0
    max_time: float | None = None
    interval: int | None = None
    half_lives: tuple[float, ...] | None = None
    init_count: int = 6

    def __post_init__(self) -> None:
        if self.evals < 1:
            raise ConfigError(f"evals={self.evals}: must be >= 1")
        if self.max_time is not None and self.max_time <= 0:
            raise ConfigError(f"max_time={self.max_time}: must be > 0 seconds")
        if self.interval is not None and self.interval < 1:
            raise ConfigError(f"interval={self.interval}: must be >= 1 iteration")
        if self.init_count < 1:
            raise ConfigError(f"init_count={self.init_count}: must be >= 1")
        if self.half_lives is not None:
            object.__setattr__(self, "half_lives", tuple(float(h) for h in self.half_lives))
