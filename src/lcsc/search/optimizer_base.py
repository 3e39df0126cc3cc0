"""The optimisers' shared vocabulary: names, ranking keys, the ask/tell protocol, and the settings check.

Keys are ``(tier, loss)`` tuples, lower is better: tier 0 holds a full-count score, tier 1 a racing score only
(ranked after every full score), ``None`` a failed evaluation. :mod:`lcsc.search.optimizer` builds optimisers; the
optimisers (:mod:`lcsc.search.cma`, :mod:`lcsc.search.evolution`) import only this module, so nothing imports back.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from lcsc.errors import ConfigError

__all__ = ["OPTIMIZERS", "Key", "Optimizer", "check_optimizer", "best_of"]

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


def check_optimizer(name: str, *, convex: bool, sigma: float | None, popsize: int | None,
                    G: int | None = None, D: int | None = None) -> None:
    """Refuse settings optimiser ``name`` cannot run with, before anything is scored (every check here depends on
    settings only, never on scores). ``sigma`` None: the default (1/K > 0); ``G``/``D`` None: the coefficient space
    is not known yet and its size is not checked."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"--optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    if name == "alg1":
        return
    if convex:
        raise ConfigError(f"--convex works with --optimizer alg1 only, not {name}")
    if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"sigma={sigma}: CMA-ES needs a step size > 0")
    if popsize is not None and popsize < 2:
        raise ConfigError(f"popsize={popsize}: CMA-ES needs a population of at least 2")
    if G is None or D is None:
        return
    dim, need = G * (D - 1), 2 if name == "sep-cmaes" else 1  # the Σw = 1 chart's dimensions: have, need
    if dim < need:
        raise ConfigError(f"{name} needs at least {need + 1} coefficients per group (got D = {D}): its chart of "
                          f"Σw = 1 would have {dim} dimension(s); use a larger --space D or cmaes")
