"""LCSC evolutionary search (Liu et al., Algorithm 1): parents from the top M, crossover, Gaussian mutation, Σa = 1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lcsc.errors import ConfigError
from lcsc.search.space import SearchSpace

__all__ = ["Alg1Optimizer", "EvolutionParams", "propose_generation", "rank"]

MAX_REDRAWS = 10_000


@dataclass(frozen=True)
class EvolutionParams:
    """Algorithm 1's knobs: mutation σ, parent pool size M, generation size E, crossover probability p_mix."""

    sigma: float
    parents: int = 10
    generation_size: int = 8
    mix_prob: float = 0.5

    def __post_init__(self) -> None:
        if self.sigma < 0 or not np.isfinite(self.sigma):
            raise ConfigError(f"sigma={self.sigma}: must be a finite number >= 0")
        if self.parents < 1 or self.generation_size < 1:
            raise ConfigError(
                f"parents={self.parents}, generation_size={self.generation_size}: both must be >= 1"
            )
        if not 0.0 <= self.mix_prob <= 1.0:
            raise ConfigError(f"mix_prob={self.mix_prob}: must be in [0, 1]")


def rank(losses: list) -> list[int]:
    """Indices of scored individuals, best (lowest loss or ranking key) first; ties keep population order; failures
    (None) excluded."""
    valid = [i for i, loss in enumerate(losses) if loss is not None]
    return sorted(valid, key=lambda i: (losses[i], i))


def _child(rng: np.random.Generator, f: np.ndarray, m: np.ndarray, p: EvolutionParams) -> np.ndarray:
    if rng.random() < p.mix_prob:
        mask = rng.random(f.shape) < 0.5
        child = np.where(mask, f, m)
    else:
        child = (f if rng.random() < 0.5 else m).copy()
    return child + rng.normal(0.0, p.sigma, size=child.shape)


def propose_generation(
    rng: np.random.Generator,
    population: list[np.ndarray],
    losses: list,
    space: SearchSpace,
    params: EvolutionParams,
    count: int,
) -> tuple[list[np.ndarray], int]:
    """Draw ``count`` children from the current population (lines 6–12 of Algorithm 1, before evaluation).

    Returns the children and how many were redrawn because a group's |Σa| fell below 0.1.
    """
    order = rank(losses)
    if not order:
        raise ConfigError("no successfully scored individual to breed from (every evaluation failed)")
    pool = order[: min(params.parents, len(order))]
    children: list[np.ndarray] = []
    redraws = 0
    while len(children) < count:
        if len(pool) >= 2:
            i, j = rng.choice(len(pool), size=2, replace=False)
        else:
            i = j = 0
        child = space.normalize(_child(rng, population[pool[i]], population[pool[j]], params))
        if child is None:
            redraws += 1
            if redraws > MAX_REDRAWS:
                raise ConfigError("sigma is so large that children keep summing to ~0; lower --sigma")
            continue
        children.append(child)
    return children, redraws


class Alg1Optimizer:
    """Algorithm 1 behind the ask/tell interface: the whole scored population is the parent pool's source."""

    name = "alg1"

    def __init__(self, space, init_ws: list[np.ndarray], init_keys: list, sigma: float, seed: int,
                 generation_size: int, parents: int, mix_prob: float, convex: bool) -> None:
        self.params = EvolutionParams(sigma, parents, generation_size, mix_prob)
        self.space = SearchSpace(space.D, space.G, convex)
        self.population, self.keys = list(init_ws), list(init_keys)
        self.rng = np.random.default_rng(seed)
        self.redraws = 0

    @property
    def generation_size(self) -> int:
        return self.params.generation_size

    def ask(self, count: int) -> list[np.ndarray]:
        children, redraws = propose_generation(self.rng, self.population, self.keys, self.space, self.params, count)
        self.redraws += redraws
        return children

    def tell(self, ws: list[np.ndarray], keys: list) -> None:
        self.population.extend(ws)
        self.keys.extend(keys)

    def settings(self) -> dict:
        p = self.params
        return {"optimizer": self.name, "sigma_w": p.sigma, "parents": p.parents, "generation_size": p.generation_size,
                "mix_prob": p.mix_prob, "convex": self.space.convex}
