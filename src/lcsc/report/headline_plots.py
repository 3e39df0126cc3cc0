"""The headline figures: held-out FD vs training iteration (LCSC paper Fig. 1), FD vs NFE, the EMA* grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from lcsc.report.plots import save_figure

__all__ = ["plot_fd_vs_iteration", "plot_fd_vs_nfe", "plot_ema_grid", "SPACE_LABELS"]

SPACE_LABELS = {"fd_mean": "FD_digits", "fd2_mean": "FD2", "fd3_mean": "FD3"}


def _grid(rows: int, cols: int, w: float = 3.6, h: float = 2.9):
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    return fig, axes


def plot_fd_vs_iteration(panels: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """One row per model, one column per space: EMA and EMA* curves, LCSC points, the early point's crossing.

    ``panels[model] = {"points": [...], "EMA": [row, ...], "EMA*": [row, ...], "LCSC": [row, ...]}`` (rows are
    report dicts with ``iteration`` and the ``fd*_mean`` keys)."""
    fig, axes = _grid(len(panels), len(SPACE_LABELS))
    for r, (model, p) in enumerate(panels.items()):
        for c, (key, label) in enumerate(SPACE_LABELS.items()):
            ax = axes[r][c]
            for method, style in (("EMA", dict(color="C0", ls="--", marker="o", ms=3)),
                                  ("EMA*", dict(color="C2", marker="s", ms=3))):
                ax.plot([x["iteration"] for x in p[method]], [x[key] for x in p[method]], label=method, **style)
            for x in p["LCSC"]:
                ax.scatter([x["iteration"]], [x[key]], marker="*", s=120, color="C3", zorder=5,
                           label="LCSC" if x is p["LCSC"][0] else None)
                ax.axhline(x[key], color="C3", lw=0.6, ls=":")
            ax.set(title=f"{model}: {label}", xlabel="training iteration", ylabel=f"held-out {label}")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_fd_vs_nfe(panels: dict[str, dict[str, Any]], path: str | Path,
                   spaces: dict[str, str] | None = None) -> Path:
    """One row per model, one column per space: EMA* and LCSC held-out FD against NFE at the end of training.

    ``panels[model] = {"EMA*": [row, ...], "LCSC": [row, ...], "searched_nfe": n}``; ``spaces`` maps a row key to
    its label (default: the three digits spaces)."""
    spaces = spaces or SPACE_LABELS
    fig, axes = _grid(len(panels), len(spaces))
    for r, (model, p) in enumerate(panels.items()):
        for c, (key, label) in enumerate(spaces.items()):
            ax = axes[r][c]
            for method, color in (("EMA*", "C2"), ("LCSC", "C3")):
                rows = sorted(p[method], key=lambda x: x["nfe"])
                ax.plot([x["nfe"] for x in rows], [x[key] for x in rows], marker="o", ms=3, color=color, label=method)
            ax.axvline(p["searched_nfe"], color="k", lw=0.6, ls=":", label=f"searched at NFE {p['searched_nfe']}")
            ax.set(title=f"{model}: {label}", xlabel="NFE", ylabel=f"held-out {label}")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_ema_grid(panels: dict[str, dict[int, dict[str, Any]]], path: str | Path) -> Path:
    """Search-noise score of every EMA* candidate at every curve point: post-hoc σ_rel (left), online half-life
    relative to the point (right); EMA* circled. ``panels[model][point] = {"sigma_rel": {σ: score},
    "half_life": {h: score}, "best": (family, value)}``."""
    fig, axes = _grid(len(panels), 2, w=4.6)
    cmap = plt.get_cmap("viridis")
    for r, (model, points) in enumerate(panels.items()):
        for i, (point, g) in enumerate(points.items()):
            color = cmap(i / max(1, len(points) - 1))
            for c, family in enumerate(("sigma_rel", "half_life")):
                xs = np.array(list(g[family]), dtype=float) / (1 if c == 0 else point)
                ax = axes[r][c]
                ax.plot(xs, list(g[family].values()), color=color, marker=".", ms=3, lw=1, label=str(point))
                if g["best"][0] == family:
                    x = g["best"][1] / (1 if c == 0 else point)
                    ax.scatter([x], [g[family][g["best"][1]]], s=60, facecolors="none", edgecolors="r", zorder=5)
        for c, (title, xlabel) in enumerate((("post-hoc EMAs", "σ_rel"),
                                             ("online EMAs", "half-life / training iteration"))):
            ax = axes[r][c]
            ax.set(title=f"{model}: {title} (search noise; ○ EMA*)", xlabel=xlabel, ylabel="search objective")
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
            ax.grid(alpha=0.3)
        axes[r][0].set_xticks([0.015, 0.03, 0.05, 0.1, 0.2])
        axes[r][1].legend(fontsize=6, title="iteration", title_fontsize=6, ncol=2)
    return save_figure(fig, path)
