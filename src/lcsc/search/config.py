"""SearchConfig: every knob of the LCSC search, frozen, with the defaults documented in the README."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lcsc.errors import ConfigError

__all__ = ["SearchConfig"]


@dataclass(frozen=True)
class SearchConfig:
    """Search settings. The paper gives no defaults; ours:

    - ``optimizer`` "alg1" (the paper's Algorithm 1), "cmaes" or "sep-cmaes"; ``space`` "full", "ema-basis:D" or
      "spline:D" (a = B·w, see :mod:`lcsc.search.basis`);
    - ``sigma``: the mutation std (Alg. 1) or initial step size σ₀ (CMA-ES) in coefficient units, 1/K when None
      (converted to each space's own coordinates so that it means the same change of a);
    - Alg. 1: ``parents`` M = 10, ``generation_size`` E = 8, ``mix_prob`` p_mix = 0.5; CMA-ES: ``popsize``
      (None: the package's default 4 + ⌊3 ln n⌋);
    - initial population: EMA coefficients for ``init_count`` = 6 half-lives spaced geometrically from one checkpoint
      interval to half the window (``half_lives`` overrides; ``interval`` defaults to the median step gap);
    - ``racing``: each candidate is first scored on ``race_fraction`` of the objective's samples (a fixed prefix of
      the same noise); the best ``race_keep`` of each generation (at least one) are scored on the full count;
    - ``revalidate`` k > 0: at the end the k best distinct individuals are re-scored on the objective's validation
      noise (another seed; ``objective.validation()``) and the best there is exported — the search noise chose the
      shortlist, a fresh draw chooses the winner, so fitting one noise draw is not rewarded;
    - ``shrink`` λ < 1: export w₀ + λ(w* − w₀), part of the way from the best initial individual w₀ to the best w*
      (1 = the best itself, the paper's choice).

    Budgets: ``evals`` counts candidates (each initial individual and child is one; duplicates are served from the
    journal without calling the objective); ``max_samples`` (optional) counts generated samples; ``max_time``
    (seconds) stops early.
    """

    evals: int = 200
    optimizer: str = "alg1"
    space: str = "full"
    generation_size: int = 8
    parents: int = 10
    sigma: float | None = None
    mix_prob: float = 0.5
    popsize: int | None = None
    convex: bool = False
    racing: bool = False
    race_fraction: float = 0.25
    race_keep: float = 0.25
    revalidate: int = 0
    shrink: float = 1.0
    seed: int = 0
    max_time: float | None = None
    max_samples: int | None = None
    interval: int | None = None
    half_lives: tuple[float, ...] | None = None
    init_count: int = 6

    def __post_init__(self) -> None:
        from lcsc.search.basis import parse_space
        from lcsc.search.optimizer_base import OPTIMIZERS, check_optimizer

        if self.evals < 1:
            raise ConfigError(f"evals={self.evals}: must be >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        parse_space(self.space)
        if self.max_time is not None and not self.max_time > 0:  # (NaN too)
            raise ConfigError(f"max_time={self.max_time}: must be > 0 seconds")
        if self.max_samples is not None and self.max_samples < 1:
            raise ConfigError(f"max_samples={self.max_samples}: must be >= 1")
        if self.interval is not None and self.interval < 1:
            raise ConfigError(f"interval={self.interval}: must be >= 1 iteration")
        if self.init_count < 1:
            raise ConfigError(f"init_count={self.init_count}: must be >= 1")
        if self.sigma is not None and not (self.sigma >= 0 and self.sigma < float("inf")):
            raise ConfigError(f"sigma={self.sigma}: must be a finite number >= 0")
        for name in ("race_fraction", "race_keep"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"{name}={value}: racing fractions must lie strictly between 0 and 1")
        if not 0.0 < self.shrink <= 1.0:
            raise ConfigError(f"shrink={self.shrink}: must be in (0, 1] (1 exports the best individual itself)")
        if self.revalidate < 0:
            raise ConfigError(f"revalidate={self.revalidate}: must be >= 0 (0 turns it off)")
        if self.popsize is not None and self.popsize < 2:
            raise ConfigError(f"popsize={self.popsize}: must be >= 2")
        self._check_alg1()
        check_optimizer(self.optimizer, convex=self.convex, sigma=self.sigma, popsize=self.popsize)  # (D: run_search)
        if self.half_lives is not None:
            object.__setattr__(self, "half_lives", tuple(float(h) for h in self.half_lives))
            if not all(0 < h < math.inf for h in self.half_lives):
                raise ConfigError(f"half_lives={self.half_lives}: need finite half-lives > 0 iterations")

    def _check_alg1(self) -> None:
        """Algorithm 1's knobs, checked here too so that a bad value is refused before the search writes anything."""
        if self.parents < 1 or self.generation_size < 1:
            raise ConfigError(f"parents={self.parents}, generation_size={self.generation_size}: both must be >= 1")
        if not 0.0 <= self.mix_prob <= 1.0:
            raise ConfigError(f"mix_prob={self.mix_prob}: must be in [0, 1]")

    def optimizer_settings(self) -> dict:
        """What must not change when a journal is resumed (everything but the budgets and the final revalidation,
        which does not change the search's trajectory)."""
        from dataclasses import asdict

        return {k: v for k, v in asdict(self).items() if k not in ("evals", "max_time", "max_samples", "revalidate", "shrink")}
