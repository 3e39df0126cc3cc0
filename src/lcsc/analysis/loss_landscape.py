# Faster-DM-training paper, Sec. 3.3, Eq. 6 and Fig. 4: 1-D linear interpolation of the training loss.
"""Training loss along θ(t) = (1−t)·θ_A + t·θ_B on a fixed evaluation batch, for one or more checkpoint pairs.

The batch (images, timesteps, noise) is drawn once from a seeded CPU generator (see :mod:`lcsc.analysis.fixed_loss`),
so the curve is deterministic; t = 0 and t = 1 are always on the grid, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lcsc.analysis.fixed_loss import (
    check_same_architecture,
    checkpoint_label,
    interpolate_states,
    load_checkpoint,
    make_fixed_loss,
)
from lcsc.errors import ConfigError

__all__ = ["LineCurve", "LandscapeResult", "t_grid", "loss_along_line", "analyze_loss_landscape",
           "plot_loss_landscape", "landscape_markdown", "DEFAULTS", "QUICK"]

DEFAULTS = {"lo": -0.5, "hi": 1.5, "points": 21, "batch": 256}
QUICK = {"lo": -0.5, "hi": 1.5, "points": 5, "batch": 16}


def t_grid(lo: float, hi: float, points: int) -> np.ndarray:
    """``points`` evenly spaced t in [lo, hi], plus 0 and 1 exactly (sorted, no near-duplicates)."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ConfigError(f"--points must be an integer >= 2, got {points!r}")
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo >= hi:
        raise ConfigError(f"--range {lo}:{hi} must have LO < HI (both finite)")
    ts = list(np.linspace(lo, hi, points))
    ts = [t for t in ts if min(abs(t - 0.0), abs(t - 1.0)) > 1e-9] + [0.0, 1.0]
    return np.array(sorted(ts), dtype=np.float64)


@dataclass
class LineCurve:
    """One pair's curve and its summary: loss at 0 and 1, the minimum along the line, the barrier on [0, 1]."""

    a: str
    b: str
    ts: list[float]
    losses: list[float]
    loss_a: float
    loss_b: float
    min_loss: float
    t_min: float
    barrier: float
    label: str = ""


@dataclass
class LandscapeResult:
    """All pairs' curves plus the evaluation settings."""

    curves: list[LineCurve]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"settings": self.settings, "pairs": [asdict(c) for c in self.curves]}


def loss_along_line(path_a: str | Path, path_b: str | Path, ts: Sequence[float], *, batch: int = 256, seed: int = 0,
                    timesteps: str = "uniform", progress: bool = True) -> LineCurve:
    """The fixed-batch loss at θ(t) for each t; the batch comes from A's run data and ``seed``."""
    from tqdm.auto import tqdm

    check_same_architecture(path_a, path_b)
    model = load_checkpoint(path_a)
    sa = {k: v.clone() for k, v in model.state_dict().items()}
    sb = load_checkpoint(path_b).state_dict()
    fixed = make_fixed_loss(path_a, batch, seed, timesteps)
    losses = []
    with torch.no_grad():
        for t in tqdm(list(ts), desc="loss along line", unit="pt", disable=not progress, leave=False):
            model.load_state_dict(interpolate_states(sa, sb, float(t)))
            losses.append(float(fixed(model)))
    return summarize(str(path_a), str(path_b), [float(t) for t in ts], losses)


def summarize(a: str, b: str, ts: list[float], losses: list[float], label: str = "") -> LineCurve:
    """Loss at t=0/1, minimum and its t, and barrier = max over t∈[0,1] − max(loss(0), loss(1))."""
    arr, tarr = np.asarray(losses), np.asarray(ts)
    la, lb = float(arr[tarr == 0.0][0]), float(arr[tarr == 1.0][0])
    i = int(np.nanargmin(arr))
    inside = arr[(tarr >= 0.0) & (tarr <= 1.0)]
    return LineCurve(a, b, ts, [float(x) for x in arr], la, lb, float(arr[i]), float(tarr[i]),
                     float(np.max(inside) - max(la, lb)), label)


def analyze_loss_landscape(pairs: Sequence[tuple[str | Path, str | Path]], *, lo: float = -0.5, hi: float = 1.5,
                           points: int = 21, batch: int = 256, seed: int = 0, timesteps: str = "uniform",
                           labels: Sequence[str] | None = None, progress: bool = True) -> LandscapeResult:
    """One :class:`LineCurve` per (A, B) pair on the same t grid and the same batch seed."""
    if not pairs:
        raise ConfigError("analyze loss-landscape needs at least one checkpoint pair A,B")
    ts = t_grid(lo, hi, points)
    curves = []
    for i, (a, b) in enumerate(pairs):
        c = loss_along_line(a, b, ts, batch=batch, seed=seed, timesteps=timesteps, progress=progress)
        c.label = labels[i] if labels and i < len(labels) else f"{checkpoint_label(a)} → {checkpoint_label(b)}"
        curves.append(c)
    settings = {"range": [lo, hi], "points": points, "batch": batch, "seed": seed, "timesteps": timesteps,
                "loss": "DM: ε-MSE on fixed (x0, t, ε); CM: the run's CT/CD loss with a re-seeded generator"}
    return LandscapeResult(curves, settings)


def plot_loss_landscape(result: LandscapeResult):
    """Loss vs t for every pair, with t = 0 (A) and t = 1 (B) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, c in enumerate(result.curves):
        ax.plot(c.ts, c.losses, marker=".", color=f"C{i}", label=c.label)
        ax.scatter([0.0, 1.0], [c.loss_a, c.loss_b], color=f"C{i}", s=50, zorder=3, edgecolor="k")
    for t, name in ((0.0, "A (t=0)"), (1.0, "B (t=1)")):
        ax.axvline(t, color="gray", ls="--", lw=0.8)
        ax.text(t, 1.0, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("t   (θ = (1−t)·θ_A + t·θ_B)")
    ax.set_ylabel("training loss (fixed batch)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def landscape_markdown(result: LandscapeResult) -> str:
    """A table per pair: loss at 0 and 1, the minimum and its t, the barrier on [0, 1]."""
    s = result.settings
    lines = ["# Loss along the line θ(t) = (1−t)·θ_A + t·θ_B", "",
             f"t ∈ [{s['range'][0]}, {s['range'][1]}] ({s['points']} points + t=0, 1); fixed batch {s['batch']} "
             f"(seed {s['seed']}, {s['timesteps']} timesteps).", "",
             "| pair | A | B | loss(0) | loss(1) | min loss | t at min | barrier on [0,1] |",
             "|---|---|---|---|---|---|---|---|"]
    for c in result.curves:
        lines.append(f"| {c.label} | {c.a} | {c.b} | {c.loss_a:.5g} | {c.loss_b:.5g} | {c.min_loss:.5g} | "
                     f"{c.t_min:.3g} | {c.barrier:.3g} |")
    lines += ["", "barrier = max loss over t ∈ [0, 1] − max(loss(0), loss(1)); ≤ 0 means no barrier between A and B."]
    return "\n".join(lines)
