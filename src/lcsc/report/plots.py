"""Matplotlib figures for reports: loss curves, search progress, coefficient profiles, side-by-side sample grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lcsc.atomic import atomic_path  # noqa: E402
from lcsc.report.grid import image_grid  # noqa: E402

__all__ = ["save_figure", "plot_curves", "plot_search_progress", "plot_coefficients", "plot_sample_pairs",
           "plot_sweep"]


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG atomically and close it (also when the write fails)."""
    try:
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def _axes(n: int, width: float = 4.2, height: float = 3.2):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, axes[0]


def plot_curves(curves: dict[str, tuple[list[float], list[float]]], path: str | Path, *, xlabel: str = "iteration",
                ylabel: str = "loss", logy: bool = True, title: str = "") -> Path:
    """One panel per named curve (x, y): e.g. the training loss of each model."""
    fig, axes = _axes(max(1, len(curves)))
    for ax, (name, (x, y)) in zip(axes, curves.items()):
        ax.plot(x, y, lw=1)
        ax.set(title=f"{title}{name}", xlabel=xlabel, ylabel=ylabel)
        if logy and min(y, default=1) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_search_progress(searches: dict[str, dict], path: str | Path) -> Path:
    """Best search-noise score against evaluations, one panel per search, with the EMA* reference line.

    ``searches[name] = {"scores": [...all evaluations...], "ema_star": float | None, "ema_star_name": str,
    "ylabel": str (optional)}``; no EMA* line when ``ema_star`` is None (an objective on another scale)."""
    fig, axes = _axes(max(1, len(searches)), 3.6, 3.0)
    for ax, (name, s) in zip(axes, searches.items()):
        scores = np.asarray(s["scores"], dtype=float)
        ax.scatter(np.arange(1, len(scores) + 1), scores, s=6, alpha=0.35, label="candidates")
        ax.plot(np.arange(1, len(scores) + 1), np.minimum.accumulate(scores), color="C1", label="best so far")
        refs = [np.nanmin(scores)] if s.get("ema_star") is None else [np.nanmin(scores), s["ema_star"]]
        if s.get("ema_star") is not None:
            ax.axhline(s["ema_star"], color="C2", ls="--", label=f"EMA* ({s['ema_star_name']})")
        lo, hi = min(refs), max(np.nanpercentile(scores, 90), *refs)
        ax.set(title=name, xlabel="evaluation", ylabel=s.get("ylabel", "FD_digits (search noise)"),
               ylim=(lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_coefficients(panels: dict[str, dict], path: str | Path) -> Path:
    """LCSC coefficients vs EMA coefficients over checkpoint steps (LCSC paper Fig. 5), one panel per search.

    ``panels[name] = {"steps": [...], "lcsc": [...], "ema": [...], "ema_label": str}``."""
    fig, axes = _axes(max(1, len(panels)), 3.8, 3.0)
    for ax, (name, p) in zip(axes, panels.items()):
        ax.axhline(0, color="k", lw=0.5)
        ax.plot(p["steps"], p["lcsc"], marker=".", ms=3, lw=1, label="LCSC")
        ax.plot(p["steps"], p["ema"], lw=1.5, label=p["ema_label"])
        ax.set(title=name, xlabel="checkpoint step", ylabel="coefficient")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_sample_pairs(pairs: dict[str, dict[str, torch.Tensor]], path: str | Path) -> Path:
    """Rows of side-by-side sample grids (e.g. EMA* | LCSC from the same noise), one row per model."""
    cols = max(len(p) for p in pairs.values())
    fig, axes = plt.subplots(len(pairs), cols, figsize=(3.4 * cols, 3.6 * len(pairs)), squeeze=False)
    for r, (model, grids) in enumerate(pairs.items()):
        for c, (method, images) in enumerate(grids.items()):
            ax = axes[r][c]
            ax.imshow(np.asarray(image_grid(images, nrow=8, pad=2)), cmap="gray", interpolation="nearest")
            ax.set_title(f"{model}: {method}", fontsize=9)
            ax.axis("off")
    # ≥ 1.5 screen pixels per grid pixel, so the 2-pixel separators between samples survive resampling.
    return save_figure(fig, path, dpi=160)


def plot_sweep(xs: list[float], ys: list[float], path: str | Path, *, best: int, xlabel: str = "σ_rel",
               ylabel: str = "score", title: str = "") -> Path:
    """A score against a log-scaled setting (e.g. a post-hoc EMA σ_rel sweep), the best point marked."""
    fig, axes = _axes(1, 4.6, 3.2)
    ax = axes[0]
    ax.plot(xs, ys, marker="o", ms=4, lw=1)
    ax.scatter([xs[best]], [ys[best]], s=90, facecolors="none", edgecolors="C3", lw=1.5,
               label=f"best {xlabel} = {xs[best]:.4g}", zorder=3)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.tick_params(axis="x", which="minor", labelsize=6)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
