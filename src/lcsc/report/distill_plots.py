"""The distillation benchmark's figure: held-out FD vs images seen (LCSC paper Fig. 1) per family and space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from lcsc.report.plots import save_figure
from lcsc.spaces import SPACE_NAMES, spaces_in

__all__ = ["plot_family_curves"]

_MARKERS = ("*", "P", "X", "D")


def plot_family_curves(runs: dict[str, dict[str, Any]], reference: str, path: str | Path, title: str) -> Path:
    """One panel per space. ``runs[name] = {"batch": B, "EMA": rows, "EMA*": rows, "LCSC": rows}``: the reference's
    EMA and EMA* curves in full, the other runs' EMA* curves thin, every run's LCSC points as stars; x = images seen
    (iterations × batch), so that runs at different batch sizes share one axis."""
    keys = spaces_in(*(r for run in runs.values() for r in run["EMA*"] + run["LCSC"]))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.9 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, (name, run) in enumerate(runs.items()):
            b, ref = run["batch"], name == reference
            if ref:
                ax.plot([r["iteration"] * b for r in run["EMA"]], [r[key] for r in run["EMA"]], color="C0", ls="--",
                        marker="o", ms=3, label=f"{name} EMA")
            ax.plot([r["iteration"] * b for r in run["EMA*"]], [r[key] for r in run["EMA*"]], color=f"C{i + 1}",
                    lw=1.6 if ref else 0.8, alpha=1 if ref else 0.7, marker="s", ms=3 if ref else 2,
                    label=f"{name} EMA*")
            ax.scatter([r["iteration"] * b for r in run["LCSC"]], [r[key] for r in run["LCSC"]],
                       marker=_MARKERS[i % len(_MARKERS)], s=90, color=f"C{i + 1}", edgecolor="k", lw=0.5,
                       zorder=5, label=f"{name} LCSC")
        ax.set(title=f"{title}: {SPACE_NAMES[key]}", xlabel="images seen", ylabel=f"held-out {SPACE_NAMES[key]}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)
