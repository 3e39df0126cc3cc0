"""One ask/tell interface for every coefficient optimiser (Algorithm 1, CMA-ES, separable CMA-ES).

An optimiser proposes a generation of points ``w`` (G×D arrays, Σw = 1 per group, in the search space's
coordinates) and is told each point's ranking key. Keys are ``(tier, loss)`` tuples, lower is better: tier 0 holds a
full-count score, tier 1 a racing score only (ranked after every full score), ``None`` a failed evaluation.
Optimisers are deterministic given their seed and what they are told, so a journal replays them exactly.
"""

from __future__ import annotations

import numpy as np

from lcsc.search.cma import CMAOptimizer
from lcsc.search.evolution import Alg1Optimizer
from lcsc.search.optimizer_base import OPTIMIZERS, Key, Optimizer, best_of, check_optimizer

__all__ = ["OPTIMIZERS", "Key", "Optimizer", "check_optimizer", "make_optimizer", "best_of"]


def make_optimizer(name: str, *, space, init_ws: list[np.ndarray], init_keys: list[Key], sigma: float, seed: int,
                   generation_size: int, parents: int, mix_prob: float, convex: bool,
                   popsize: int | None) -> Optimizer:
    """Build optimiser ``name`` from the scored initial population (CMA-ES starts at its best individual)."""
    sigma_w = sigma / space.step_scale()
    check_optimizer(name, convex=convex, sigma=sigma_w, popsize=popsize, G=space.G, D=space.D)
    if name == "alg1":
        return Alg1Optimizer(space, init_ws, init_keys, sigma_w, seed, generation_size, parents, mix_prob, convex)
    return CMAOptimizer(init_ws, init_keys, sigma_w, seed, popsize, separable=name == "sep-cmaes")
