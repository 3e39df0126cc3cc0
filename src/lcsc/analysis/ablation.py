# Ablation of the faster-DM-training changes (faster-dm-training paper, Fig. 6 a–c; speed-up as in its Sec. 5).
"""Train the digits DM under several variants (baseline, +MD, +MD+LRC, +CLTS, all, Min-SNR) and seeds, score an
online EMA on held-out noise every few iterations in the FD_digits space, and measure the speed-up: the iterations
the baseline needs to reach its final FD ÷ the iterations a variant needs to reach the same FD."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.errors import ConfigError

__all__ = ["Variant", "VARIANTS", "AblationConfig", "iters_to_reach", "summarize", "sweep_variants"]


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


def iters_to_reach(steps: list[int] | np.ndarray, fds: list[float] | np.ndarray, target: float) -> float | None:
    """First iteration at which the FD curve reaches ``target`` (linear between evaluations); None if never."""
    steps, fds = np.asarray(steps, dtype=float), np.asarray(fds, dtype=float)
    hits = np.nonzero(fds <= target)[0]
    if not len(hits):
        return None
    i = int(hits[0])
    if i == 0:
        return float(steps[0] * min(1.0, target / fds[0])) if fds[0] > 0 else float(steps[0])
    x0, x1, y0, y1 = steps[i - 1], steps[i], fds[i - 1], fds[i]
    return float(x0 + (x1 - x0) * (y0 - target) / (y0 - y1)) if y0 != y1 else float(x1)


def summarize(curves: dict[str, dict[int, list[float]]], steps: tuple[int, ...]) -> list[dict[str, Any]]:
    """Rows ``variant, final_fd_mean, final_fd_std, iters_to_baseline_fd, speedup`` (+ ``within_spread``, and
    ``seeds_better``: on how many training seeds the variant's final FD is below the baseline's with that seed).

    ``curves[variant][seed] = FD at each of ``steps``; the seed-mean curve is used for crossings."""
    mean = {v: np.mean(np.asarray(list(c.values())), axis=0) for v, c in curves.items()}
    finals = {v: np.asarray(list(c.values()))[:, -1] for v, c in curves.items()}
    base = mean["baseline"]
    target = float(base[-1])
    base_iters = iters_to_reach(steps, base, target)
    rows = []
    for v in curves:
        it = iters_to_reach(steps, mean[v], target)
        spread = float(finals[v].std() + finals["baseline"].std())
        paired = [s for s in curves[v] if s in curves["baseline"]]
        wins = sum(curves[v][s][-1] < curves["baseline"][s][-1] for s in paired)
        rows.append({"variant": v, "final_fd_mean": float(finals[v].mean()), "final_fd_std": float(finals[v].std()),
                     "iters_to_baseline_fd": it, "speedup": (base_iters / it) if it else None,
                     "within_spread": bool(abs(finals[v].mean() - finals["baseline"].mean()) <= spread),
                     "seeds_better": f"{wins}/{len(paired)}",
                     "fd_curve_mean": [float(x) for x in mean[v]]})
    return rows


def run_ablation(cfg: AblationConfig, out: str | Path, *, progress: bool = True,
                 on_run: Callable[[str, int, list[float]], None] | None = None) -> dict[str, dict[int, list[float]]]:
    """Train every variant × seed into ``out/<variant>/seed-<s>`` (resumable) and return the FD curves."""
    from lcsc.analysis.ablation_runs import train_and_score

    curves: dict[str, dict[int, list[float]]] = {}
    for variant in cfg.variants:
        for seed in cfg.seeds:
            fds = train_and_score(variant, seed, cfg, Path(out), progress)
            curves.setdefault(variant.name, {})[seed] = fds
            if on_run:
                on_run(variant.name, seed, fds)
    return curves
