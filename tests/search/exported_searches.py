"""Small real search folders for the exported-coefficients tests: an anchored Algorithm 1 search with the validation
guard, and gradient searches with and without anchors, over a tiny stack of four random ``small_net`` states (steps
100 … 400) with two in-memory anchors. A few seconds each on one core."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.merge import StackMerger
from lcsc.search import SearchConfig, SearchResult, run_gradient_search, run_search
from lcsc.search.grad_config import GradConfig
from tests.conftest import make_states, write_states

A_STAR = np.array([0.6, -0.3, 0.4, 0.1, 0.2, 0.0])  # the target over 4 window rows then the 2 anchors
ANCHORS = ("ema:hl-150", "ema-start:hl-300")
HALF_LIVES = (100.0, 200.0)


class Distance:
    """‖θ − target‖² over the float tensors; the gradient loss adds a tiny draw from the step's fresh noise, and the
    validation noise has its own target (so the guard can pick another finalist than the search noise would)."""

    direction, role = "minimize", "search"

    def __init__(self, target: dict[str, torch.Tensor], other: dict[str, torch.Tensor], noise_seed: int = 0) -> None:
        self.target, self.other, self.noise_seed, self.num_samples = target, other, noise_seed, 1

    def _dist(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(((state[k].double() - t) ** 2).sum() for k, t in self.target.items())

    def score(self, state: dict[str, torch.Tensor]) -> float:
        return float(self._dist(state))

    def loss(self, state: dict[str, torch.Tensor], generator: torch.Generator, batch_size: int) -> torch.Tensor:
        return self._dist(state) * (1 + 1e-4 * torch.randn((), generator=generator, dtype=torch.float64))

    def validation(self) -> Distance:
        out = Distance(self.other, self.other, self.noise_seed + 1)
        out.role = "validation"
        return out


def _combination(states: list[dict[str, torch.Tensor]], a: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: sum(float(c) * s[k].double() for c, s in zip(a, states))
            for k, v in states[0].items() if v.is_floating_point()}


def tiny_world(folder: Path, anchored: bool = True) -> tuple[StackMerger, Distance]:
    """The stack (four window checkpoints, plus two anchors when ``anchored``) and its objective."""
    states = make_states(6, seed=3)
    write_states(folder / "ckpts", states[:4])
    stack = CheckpointStack.open(folder / "ckpts", progress=False)
    if anchored:
        stack = stack.with_anchors(list(zip(ANCHORS, states[4:])))
    other = A_STAR + np.array([-0.3, 0.3, 0.0, 0.0, 0.0, 0.0])  # the guard picks an initial individual
    objective = Distance(_combination(states, A_STAR), _combination(states, other))
    return StackMerger(stack), objective


def alg1_search(folder: Path, **config) -> tuple[Path, SearchResult, StackMerger, Distance]:
    """An anchored Algorithm 1 search in ``folder/search`` (guarded unless ``revalidate=0`` is given)."""
    merger, objective = tiny_world(folder)
    cfg = SearchConfig(**({"evals": 30, "seed": 1, "revalidate": 3, "half_lives": HALF_LIVES} | config))
    out = folder / "search"
    return out, run_search(merger, objective, cfg, out, progress=False), merger, objective


def gradient_search(folder: Path, anchored: bool = True, steps: int = 12) -> tuple[Path, SearchResult]:
    """A gradient search (anchored or not) in ``folder/grad``."""
    merger, objective = tiny_world(folder, anchored)
    out = folder / "grad"
    res = run_gradient_search(merger, objective, SearchConfig(half_lives=HALF_LIVES),
                              GradConfig(steps=steps, batch_size=2, lr=0.05, lr_final=0.5), out, progress=False)
    return out, res
