"""One ask/tell interface for every coefficient optimiser (Algorithm 1, CMA-ES, separable CMA-ES).

An optimiser proposes a generation of points ``w`` (G×D arrays, Σw = 1 per group, in the search space's
coordinates) and is told each point's ranking key. Keys are ``(tier, loss)`` tuples, lower is better: tier 0 holds a
full-count score, tier 1 a racing score only (ranked after every full score), ``None`` a failed evaluation.
Optimisers are deterministic given their seed and what they are told, so a journal replays them exactly.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from lcsc.errors import ConfigError

__all__ = ["OPTIMIZERS", "Key", "Optimizer", "make_optimizer", "best_of"]

OPTIMIZERS = ("alg1", "cmaes", "sep-cmaes")

Key = tuple[int, float] | None


class Optimizer(Protocol):
    """``ask(count)`` → a generation of w's; ``tell(ws, keys)`` after they are scored; ``settings()`` for journals."""

    name: str

    def ask(self, count: int) -> list[np.ndarray]: ...

    def tell(self, ws: list[np.ndarray], keys: list[Key]) -> None: ...

    def settings(self) -> dict[str, Any]: ...


def best_of(keys: list[Key]) -> int | None:
    """Index of the best key (ties: the first); None when every key is None."""
    valid = [i for i, k in enumerate(keys) if k is not None]
    return min(valid, key=lambda i: (keys[i], i)) if valid else None


def make_optimizer(name: str, *, space, init_ws: list[np.ndarray], init_keys: list[Key], sigma: float, seed: int,
                   generation_size: int, parents: int, mix_prob: float, convex: bool,
                   popsize: int | None) -> Optimizer:
    """Build optimiser ``name`` from the scored initial population (CMA-ES starts at its best individual)."""
    from lcsc.search.cma import CMAOptimizer
    from lcsc.search.evolution import Alg1Optimizer

    sigma_w = sigma / space.step_scale()
    if name == "alg1":
        return Alg1Optimizer(space, init_ws, init_keys, sigma_w, seed, generation_size, parents, mix_prob, convex)
    if name in ("cmaes", "sep-cmaes"):
        if convex:
            raise ConfigError(f"--convex works with --optimizer alg1 only, not {name}")
        return CMAOptimizer(init_ws, init_keys, sigma_w, seed, popsize, separable=name == "sep-cmaes")
    raise ConfigError(f"--optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
