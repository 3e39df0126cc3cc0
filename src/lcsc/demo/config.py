"""DemoConfig: every knob of ``lcsc demo`` (sizes chosen to fit 15 minutes on 2 CPU cores; ``quick()`` ≤ 3)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lcsc.errors import ConfigError

__all__ = ["DemoConfig", "SEARCH_OBJECTIVES"]

SEARCH_OBJECTIVES = ("fd-digits", "mean:fd-digits,fd-digits2")  # FD2's space is no longer unseen with the mean


@dataclass(frozen=True)
class DemoConfig:
    """The paper's experiment at digits scale.

    A DM and a CM (improved CT; CD from the DM with ``cd``) train for ``iterations`` with online EMAs whose
    half-lives are ``ema_fractions`` of the run (the "EMA" rows use ``default_ema_fraction``, like 0.9999 at 800K
    iterations), recording windows of ``window`` iterations every ``interval`` ending at ``early_fraction`` of the
    run and at the end. LCSC searches each window on fixed search noise in the FD_digits space; every row is then
    scored on ``eval_seeds`` held-out noise seeds.
    """

    iterations: int = 3200
    early_fraction: float = 0.25
    window: int = 800
    interval: int = 8
    batch_size: int = 128
    channels: int = 32
    dm_lr: float = 2e-3
    cm_lr: float = 1e-3
    ema_fractions: tuple[float, ...] = (1 / 400, 1 / 200, 1 / 100, 1 / 40, 1 / 20, 1 / 10)
    default_ema_fraction: float = 1 / 100
    dm_nfe: int = 10
    cm_nfe: int = 1
    search_samples: int = 1000
    search_objective: str = "mean:fd-digits,fd-digits2"
    search_optimizer: str = "alg1"
    search_space: str = "full"
    search_racing: bool = False
    dm_search_evals: int = 100
    cm_search_evals: int = 400
    eval_samples: int = 1000
    eval_seeds: int = 3
    cd: bool = False
    cd_iterations: int = 1600
    inception: bool = False
    inception_samples: int = 500
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0 < self.early_fraction < 1:
            raise ConfigError(f"early_fraction {self.early_fraction} must be in (0, 1)")
        if self.early_point < self.interval * 2 or self.window < 2 * self.interval:
            raise ConfigError(f"the early point (step {self.early_point}) and window ({self.window}) must hold at "
                              f"least two checkpoints {self.interval} iterations apart")
        if self.default_ema_fraction not in self.ema_fractions:
            raise ConfigError(f"default_ema_fraction {self.default_ema_fraction} must be one of ema_fractions")
        if self.eval_seeds < 1 or min(self.search_samples, self.eval_samples) < 16:
            raise ConfigError("need eval_seeds >= 1 and at least 16 samples per evaluation")
        if self.search_objective not in SEARCH_OBJECTIVES:
            raise ConfigError(f"search_objective {self.search_objective!r}: choose one of "
                              f"{', '.join(SEARCH_OBJECTIVES)}")
        self.search_config(1)  # validates optimizer and space names

    def search_config(self, evals: int):
        """The demo's LCSC search settings for a budget of ``evals``."""
        from lcsc.search import SearchConfig

        return SearchConfig(evals=evals, seed=self.seed, optimizer=self.search_optimizer, space=self.search_space,
                            racing=self.search_racing)

    @classmethod
    def quick(cls, **overrides: Any) -> DemoConfig:
        """A ≤ 3-minute version for smoke tests: short runs, small windows, few evaluations and samples."""
        base = dict(iterations=600, window=150, interval=5, channels=16, dm_nfe=5, search_samples=200,
                    dm_search_evals=16, cm_search_evals=24, eval_samples=200, eval_seeds=3, cd_iterations=200,
                    inception_samples=32)
        return cls(**(base | overrides))

    @property
    def early_point(self) -> int:
        """The step of the "reduce training cost" window end (≈ ``early_fraction`` of the run)."""
        return max(self.interval, int(round(self.iterations * self.early_fraction / self.interval)) * self.interval)

    @property
    def half_lives(self) -> tuple[float, ...]:
        return tuple(float(max(1, round(self.iterations * f))) for f in self.ema_fractions)

    @property
    def default_half_life(self) -> float:
        return float(max(1, round(self.iterations * self.default_ema_fraction)))

    @property
    def ema_points(self) -> tuple[int, int, int]:
        """Steps of the EMA baseline rows: the early point, half of training, the end."""
        return (self.early_point, self.iterations // 2, self.iterations)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"early_point": self.early_point, "half_lives": self.half_lives}
