# The LCSC paper's CD experiment (Liu et al. 2024, Sec. 5.1, Tab. 1 and Tab. 7) at digits scale: the runs and their sizes.
"""``DistillConfig``: a converged DM teacher, a CD reference run and short CD runs (two batch sizes), CT beside it.

Every run is a :class:`~lcsc.experiment.config.DemoConfig` (its recorder windows, EMA grid, search and held-out settings)
so that the demo's stages (training, EMA*, anchored LCSC, held-out rows) run on it unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lcsc.errors import ConfigError
from lcsc.experiment.config import SIGMA_RELS, DemoConfig
from lcsc.protocol import DECISION_SEEDS, REPORT_SEEDS, seed_role

__all__ = ["DistillConfig", "RunSpec", "CURVE_32NDS", "GEOMETRIC_32NDS"]

EMA_FRACTIONS = DemoConfig.__dataclass_fields__["ema_fractions"].default
CURVE_32NDS = (1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 28, 32)  # EMA / EMA* curve points, in 32nds of a run (12 points)
GEOMETRIC_32NDS = (1, 2, 4, 8, 16, 32)  # LCSC window ends of the reference runs: N/32, N/16, …, N


@dataclass(frozen=True)
class RunSpec:
    """One training run: ``name`` (its folder), ``model`` (the demo's "dm" / "cm-ct" / "cm-cd"), its length and
    batch, and its :class:`DemoConfig`."""

    name: str
    model: str
    iterations: int
    batch_size: int
    demo: DemoConfig

    @property
    def images(self) -> int:
        return self.iterations * self.batch_size


@dataclass(frozen=True)
class DistillConfig:
    """The teacher DM trains ``teacher_iterations``; CD (from the teacher's EMA* at its end) and CT train a reference
    of ``iterations`` (N) at ``batch_size`` (B) and short runs of N/``short_divisor``, each with its own schedule: CD at
    B and at B/``batch_divisor``, CT at B. Windows of ``window`` iterations, one checkpoint every ``interval`` (K =
    100; the same absolute window for every CM run, as the paper's 40K / 100 at every length) end at N/32, N/16, …, N
    (those within a run); the teacher's ``teacher_window`` / ``teacher_interval`` ends at its end. EMA* and every
    held-out row are computed at 12 points per run; the teacher's LCSC is searched at ``teacher_nfe`` (the paper's
    NFE 9) and compared with EMA* at ``dm_nfes``."""

    seed: int = 10
    teacher_iterations: int = 51200  # converged on decision seed 0 (25,600 was not): docs/distillation
    iterations: int = 12800
    short_divisor: int = 8
    batch_size: int = 64
    batch_divisor: int = 4
    channels: int = 32
    window: int = 800
    interval: int = 8
    teacher_window: int = 1600
    teacher_interval: int = 16
    teacher_nfe: int = 9
    dm_nfes: tuple[int, ...] = (4, 5, 6, 8, 9, 10, 12, 15, 20)
    cm_nfes: tuple[int, ...] = (1, 2, 3, 4)
    search_samples: int = 1000
    grid_samples: int = 150
    eval_samples: int = 800
    eval_seeds: int = 3
    dm_search_evals: int = 60
    cm_search_evals: int = 90
    device: str = "cpu"
    cd_target_ema: float = 0.95  # θ⁻ for CD (decided on decision seed 0: θ⁻ = θ got worse with training)
    sigma_rels: tuple[float, ...] = SIGMA_RELS  # the EMA* grid's post-hoc σ_rel (the demo's 13)
    ema_fractions: tuple[float, ...] = EMA_FRACTIONS  # online EMA half-lives as fractions of each run (the demo's 11)
    search: str = "gradient"  # "gradient" (the demo's export since issue 34; seed 11) or "alg1" (seed 10's)
    grad_steps: int = 40  # the demo's gradient setting (issue 33's "short")
    grad_batch_size: int = 256

    @property
    def held_out_noise(self) -> str:
        """Report noise on report seeds; check noise on decision seeds (sizing probes: :mod:`lcsc.protocol`)."""
        return "decision" if seed_role(self.seed) == "decision" else "report"

    @property
    def default_ema_fraction(self) -> float:
        """The "EMA" rows' half-life fraction: the demo's 1/100 (like 0.9999 at 800K), else the middle one."""
        return 1 / 100 if 1 / 100 in self.ema_fractions else self.ema_fractions[len(self.ema_fractions) // 2]

    def __post_init__(self) -> None:
        if seed_role(self.seed) == "other":
            raise ConfigError(f"seed {self.seed} is neither a report seed {REPORT_SEEDS} (the benchmark's results) nor "
                              f"a decision seed {DECISION_SEEDS} (sizing probes, on check noise); see lcsc.protocol")
        if self.iterations % (32 * self.short_divisor) or self.teacher_iterations % 32:
            raise ConfigError(f"iterations {self.iterations} must be a multiple of 32 × short_divisor "
                              f"({32 * self.short_divisor}) and teacher_iterations {self.teacher_iterations} of 32")
        if self.short_divisor < 2 or self.batch_divisor < 2 or self.batch_size % self.batch_divisor:
            raise ConfigError(f"short_divisor {self.short_divisor} and batch_divisor {self.batch_divisor} must be "
                              f">= 2, and batch_size {self.batch_size} divisible by batch_divisor")
        if self.search not in ("gradient", "alg1"):
            raise ConfigError(f"search {self.search!r}: choose 'gradient' or 'alg1'")
        if self.teacher_nfe not in self.dm_nfes:
            raise ConfigError(f"dm_nfes {self.dm_nfes} must include teacher_nfe {self.teacher_nfe}")
        self.runs()  # every run's DemoConfig validates its own sizes

    @property
    def short_iterations(self) -> int:
        return self.iterations // self.short_divisor

    @property
    def small_batch(self) -> int:
        return self.batch_size // self.batch_divisor

    @classmethod
    def quick(cls, **overrides: Any) -> DistillConfig:
        """A ≤ 2-minute version for smoke tests and CI: tiny runs, samples and budgets."""
        base = dict(teacher_iterations=64, iterations=64, short_divisor=2, batch_size=16, channels=8, window=16,
                    interval=4, teacher_window=16, teacher_interval=4, search_samples=32, grid_samples=16,
                    eval_samples=32, eval_seeds=2, dm_search_evals=10, cm_search_evals=10, dm_nfes=(4, 9),
                    cm_nfes=(1, 2), sigma_rels=(0.03, 0.06, 0.12), ema_fractions=(1 / 16, 1 / 4),
                    grad_steps=3, grad_batch_size=16)
        return cls(**(base | overrides))

    def _demo(self, iterations: int, batch: int, window: int, interval: int, ends: tuple[int, ...],
              nfe: int = 5, nfes: tuple[int, ...] | None = None) -> DemoConfig:
        curve = tuple(iterations * k // 32 for k in CURVE_32NDS)
        return DemoConfig(
            iterations=iterations, window=window, interval=interval, batch_size=batch, channels=self.channels,
            window_ends=ends, curve_at=curve, seed=self.seed, device=self.device, dm_nfe=nfe,
            dm_nfes=nfes or tuple(sorted(set(self.dm_nfes) | {nfe})), cm_nfes=self.cm_nfes, search_samples=self.search_samples,
            grid_samples=self.grid_samples, eval_samples=self.eval_samples, eval_seeds=self.eval_seeds,
            dm_search_evals=self.dm_search_evals, cm_search_evals=self.cm_search_evals, window_only_baseline=False,
            shrink_lambdas=(), held_out_noise=self.held_out_noise, cd_target_ema=self.cd_target_ema, sigma_rels=self.sigma_rels,
            ema_fractions=self.ema_fractions, default_ema_fraction=self.default_ema_fraction,
            gradient=self.search == "gradient", export=self.search, dm_low_nfe=0, grad_steps=self.grad_steps,
            grad_batch_size=self.grad_batch_size)

    def runs(self) -> dict[str, RunSpec]:
        """Every run by name, in training order: teacher, CT, CD (the CD runs need the teacher)."""
        n, s, b = self.iterations, self.short_iterations, self.batch_size
        ends = tuple(e for e in (n * k // 32 for k in GEOMETRIC_32NDS) if e >= 2 * self.interval)
        short_ends = tuple(e for e in ends if e <= s)
        t = self.teacher_iterations
        specs = [("teacher", "dm", t, b, self._demo(t, b, self.teacher_window, self.teacher_interval, (t,),
                                                    self.teacher_nfe)),
                 ("ct", "cm-ct", n, b, self._demo(n, b, self.window, self.interval, ends)),
                 ("ct-short", "cm-ct", s, b, self._demo(s, b, self.window, self.interval, short_ends)),
                 ("cd", "cm-cd", n, b, self._demo(n, b, self.window, self.interval, ends)),
                 ("cd-short", "cm-cd", s, b, self._demo(s, b, self.window, self.interval, short_ends)),
                 ("cd-small", "cm-cd", s, self.small_batch,
                  self._demo(s, self.small_batch, self.window, self.interval, short_ends))]
        return {name: RunSpec(name, model, it, batch, demo) for name, model, it, batch, demo in specs}

    def reference(self, name: str) -> str:
        """The reference run a run's LCSC is compared with ("cd" for CD runs, "ct" for CT, itself for the teacher)."""
        return {"teacher": "teacher", "ct": "ct", "ct-short": "ct"}.get(name, "cd")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
