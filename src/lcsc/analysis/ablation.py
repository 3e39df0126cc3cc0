# Ablation of the faster-DM-training changes (faster-dm-training paper, Fig. 6 a–c; speed-up as in its Sec. 5).
"""Train the digits DM under several variants (baseline, +MD, +MD+LRC, +CLTS, all, Min-SNR) and seeds, score an
online EMA on held-out noise every few iterations in the FD_digits space, and measure the speed-up: the iterations
the baseline needs to reach its final FD ÷ the iterations a variant needs to reach the same FD."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lcsc.errors import ConfigError
from lcsc.experiment.headlines import crossing

__all__ = ["Variant", "VARIANTS", "AblationConfig", "summarize", "sweep_variants"]


@dataclass(frozen=True)
class Variant:
    """A training recipe: timestep sampler, loss weighting, β₁ schedule (names of the trainer's registries)."""

    name: str
    timesteps: str = "uniform"
    weighting: str = "none"
    momentum: str = "constant"
    clts_mu: float = 0.3
    clts_target_fraction: float = 0.25


VARIANTS = {v.name: v for v in (
    Variant("baseline"), Variant("+MD", momentum="md"), Variant("+MD+LRC", momentum="mdlrc"),
    Variant("+CLTS", timesteps="clts"), Variant("all (CLTS+MD+LRC)", timesteps="clts", momentum="mdlrc"),
    Variant("Min-SNR", weighting="minsnr"))}


def sweep_variants(kind: str, values: list[float]) -> list[Variant]:
    """CLTS variants over μ (``kind="mu"``, fractions of T; Fig. 6b) or K_target (``"target"``, fractions of the
    run; Fig. 6c)."""
    if kind == "mu":
        return [Variant(f"+CLTS mu={v:g}", timesteps="clts", clts_mu=v) for v in values]
    if kind == "target":
        return [Variant(f"+CLTS target={v:g}", timesteps="clts", clts_target_fraction=v) for v in values]
    raise ConfigError(f"sweep {kind!r} must be 'mu' or 'target'")


@dataclass(frozen=True)
class AblationConfig:
    """Sizes of the ablation (defaults fit ≤ 30 minutes on 2 CPU cores; ``quick()`` ≤ 3)."""

    iterations: int = 2400
    eval_every: int = 200
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 128
    channels: int = 32
    lr: float = 2e-3
    ema_fraction: float = 0.05
    eval_samples: int = 500
    eval_nfe: int = 10
    device: str = "cpu"
    variants: tuple[Variant, ...] = field(default_factory=lambda: tuple(VARIANTS.values()))

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.eval_every < 1 or self.iterations % self.eval_every:
            raise ConfigError(f"need iterations >= 1 and eval_every >= 1 dividing it; got iterations={self.iterations}, "
                              f"eval_every={self.eval_every}")
        if len(self.seeds) < 1 or not self.variants or self.variants[0].name != "baseline":
            raise ConfigError("need at least one seed and the baseline as the first variant")

    @classmethod
    def quick(cls, **kw: Any) -> AblationConfig:
        return cls(**({"iterations": 300, "eval_every": 50, "seeds": (0, 1), "channels": 16, "eval_samples": 200,
                        "eval_nfe": 5} | kw))

    @property
    def eval_steps(self) -> tuple[int, ...]:
        return tuple(range(self.eval_every, self.iterations + 1, self.eval_every))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def summarize(curves: dict[str, dict[int, list[float]]], steps: tuple[int, ...]) -> list[dict[str, Any]]:
    """Rows ``variant, final_fd_mean, final_fd_std, iters_to_baseline_fd, speedup`` (+ ``within_spread``, and
    ``seeds_better``: on how many training seeds the variant's final FD is below the baseline's with that seed).

    ``curves[variant][seed] = FD at each of ``steps``; the seed-mean curve is used for crossings
    (:func:`lcsc.experiment.headlines.crossing`: linear between evaluations, the first step when already reached there)."""
    mean = {v: np.mean(np.asarray(list(c.values())), axis=0) for v, c in curves.items()}
    finals = {v: np.asarray(list(c.values()))[:, -1] for v, c in curves.items()}
    base = mean["baseline"]
    target = float(base[-1])
    xs = [float(s) for s in steps]
    base_iters = crossing(xs, [float(y) for y in base], target).x
    rows = []
    for v in curves:
        it = crossing(xs, [float(y) for y in mean[v]], target).x
        spread = float(finals[v].std() + finals["baseline"].std())
        paired = [s for s in curves[v] if s in curves["baseline"]]
        wins = sum(curves[v][s][-1] < curves["baseline"][s][-1] for s in paired)
        rows.append({"variant": v, "final_fd_mean": float(finals[v].mean()), "final_fd_std": float(finals[v].std()),
                     "iters_to_baseline_fd": it, "speedup": (base_iters / it) if it else None,
                     "within_spread": bool(abs(finals[v].mean() - finals["baseline"].mean()) <= spread),
                     "seeds_better": f"{wins}/{len(paired)}",
                     "fd_curve_mean": [float(x) for x in mean[v]]})
    return rows

