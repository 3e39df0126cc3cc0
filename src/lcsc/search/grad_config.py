"""GradConfig: the gradient search's settings, frozen. The defaults (40 steps of 256 samples, lr 4e-3) are the setting
``benchmarks/search_efficiency.py --gradient`` chose on the decision seeds by its rule (docs/search/gradient.md)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from lcsc.errors import ConfigError

__all__ = ["GradConfig"]


@dataclass(frozen=True)
class GradConfig:
    """Settings of :func:`lcsc.search.gradient.run_gradient_search`.

    - ``steps`` Adam steps, each on ``batch_size`` fresh samples (the gradient noise family, :mod:`lcsc.protocol`);
    - ``lr``: Adam's learning rate in coefficient units, decayed by a cosine to ``lr_final`` × ``lr`` at the last step;
    - ``average_from``: iterates after this fraction of the steps are averaged (the averaged iterate is a finalist);
    - ``temperature``: the smooth max of a ``max:`` objective, τ·logsumexp(r/τ) over the normalised terms r;
    - ``checkpointing``: recompute each network call's activations in the backward pass (memory flat in NFE);
    - ``seed``: picks the fresh-noise stream (with the objective's noise seed); ``max_time`` seconds stops early.
    """

    steps: int = 40
    batch_size: int = 256
    lr: float = 4e-3
    lr_final: float = 0.1
    average_from: float = 0.5
    temperature: float = 0.05
    checkpointing: bool = True
    seed: int = 0
    max_time: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"--steps {self.steps}: the gradient search needs at least 1 step")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size {self.batch_size}: a Fréchet distance needs at least 2 samples per step")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr {self.lr}: the learning rate must be a finite number > 0")
        if not 0 < self.lr_final <= 1:
            raise ConfigError(f"lr_final={self.lr_final}: the final learning rate is a fraction of --lr in (0, 1]")
        if not 0 <= self.average_from < 1:
            raise ConfigError(f"average_from={self.average_from}: must be in [0, 1) (the averaged tail of the steps)")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"temperature={self.temperature}: the smooth max needs a temperature > 0")
        if not 0 <= self.seed < 100:
            raise ConfigError(f"seed={self.seed}: gradient-search seeds are 0 … 99")
        if self.max_time is not None and not self.max_time > 0:
            raise ConfigError(f"max_time={self.max_time}: must be > 0 seconds")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): a cosine from ``lr`` to ``lr_final·lr``."""
        frac = step / max(1, self.steps - 1)
        return self.lr * (self.lr_final + (1 - self.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))

    def average_start(self) -> int:
        """The first step whose resulting iterate enters the average."""
        return int(math.floor(self.average_from * self.steps))

    def settings(self) -> dict:
        """What a resume must keep (everything but the time limit and the step budget)."""
        return {k: v for k, v in asdict(self).items() if k not in ("max_time", "steps")}
