# CMA-ES (Hansen 2016) and separable CMA-ES (Ros & Hansen 2008) from the `cmaes` package, on the chart of Σw = 1.
"""``CMAOptimizer``: the mean starts at the best initial individual; points are z in the affine chart w = w₀ + Q·z,
so every candidate has Σw = 1 per group exactly and the step size is the optimiser's own (no renormalisation)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lcsc.errors import ConfigError
from lcsc.search.hyperplane import Hyperplane
from lcsc.search.optimizer_base import Key, best_of, check_optimizer

__all__ = ["CMAOptimizer"]


class CMAOptimizer:
    """Ask/tell adapter around ``cmaes.CMA`` / ``cmaes.SepCMA`` (seeded; replayable from a journal)."""

    def __init__(self, init_ws: list[np.ndarray], init_keys: list[Key], sigma: float, seed: int,
                 popsize: int | None, separable: bool) -> None:
        from cmaes import CMA, SepCMA

        best = best_of(init_keys)
        if best is None:
            raise ConfigError("every initial individual failed; CMA-ES has no start point")
        self.chart = Hyperplane(np.asarray(init_ws[best]))
        self.name = "sep-cmaes" if separable else "cmaes"
        check_optimizer(self.name, convex=False, sigma=sigma, popsize=popsize, G=self.chart.G, D=self.chart.D)
        cls = SepCMA if separable else CMA
        self.es = cls(mean=np.zeros(self.chart.dim), sigma=float(sigma), seed=int(seed), population_size=popsize)
        self.sigma0, self.start = float(sigma), best

    @property
    def generation_size(self) -> int:
        return int(self.es.population_size)

    def ask(self, count: int) -> list[np.ndarray]:
        """A whole CMA generation is drawn (so the RNG stream does not depend on ``count``); the first ``count``
        are returned (a generation cut short by the budget is never told)."""
        zs = [self.es.ask() for _ in range(self.es.population_size)]
        return [self.chart.to_w(z) for z in zs[:count]]

    def tell(self, ws: list[np.ndarray], keys: list[Key]) -> None:
        if len(ws) < self.es.population_size:
            return  # the last, partial generation
        order = sorted(range(len(ws)), key=lambda i: (keys[i] is None, keys[i] or (0, 0.0), i))
        rank = {i: r for r, i in enumerate(order)}
        self.es.tell([(self.chart.to_z(w), float(rank[i])) for i, w in enumerate(ws)])

    def settings(self) -> dict[str, Any]:
        return {"optimizer": self.name, "sigma0_w": self.sigma0, "popsize": self.generation_size,
                "start": self.start}
