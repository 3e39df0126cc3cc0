"""Tables of the gradient benchmark (:mod:`lcsc.analysis.gradient_efficiency`): per (seed, model) rows of held-out FD,
samples and core-seconds; counts of (seed, model, space) triples below EMA* and Alg. 1; sample efficiency against
Algorithm 1's long-budget held-out result."""

from __future__ import annotations

from typing import Any

import numpy as np

from lcsc.report.tables import markdown_table

__all__ = ["cell_table", "counts", "summary", "efficiency"]

LABELS = {"digits": "FD_digits", "digits2": "FD2", "digits3": "FD3", "digits4": "FD4"}


def _fmt(v: float | None, space: str) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    return f"{v:.1f}" if space == "digits" else f"{v:.3f}"


def cell_table(cells: list[dict[str, Any]]) -> str:
    """One row per (seed, model, row) with the held-out FD in every space, samples and core-seconds."""
    spaces = list(cells[0]["rows"]["EMA*"]["scores"])
    rows = []
    for c in cells:
        for name, row in c["rows"].items():
            rows.append([str(c["seed"]), c["model"], name if name != "EMA*" else f"EMA* ({c['ema_star']})",
                         *[_fmt(row["scores"].get(s), s) for s in spaces],
                         str(row.get("samples", "—")), f"{row['cpu_s']:.0f}" if "cpu_s" in row else "—"])
    headers = ["seed", "model", "row", *[LABELS[s] for s in spaces], "samples", "core-s"]
    return markdown_table([dict(zip(headers, r)) for r in rows], [(h, lambda r, h=h: r[h]) for h in headers])


def counts(cells: list[dict[str, Any]], row: str) -> dict[str, Any]:
    """How many (seed, model, space) triples ``row`` is below EMA* and below Alg. 1 in, and its mean gain."""
    below_star = below_alg1 = total = 0
    gains: dict[str, list[float]] = {}
    for c in cells:
        if row not in c["rows"]:
            continue
        for space, v in c["rows"][row]["scores"].items():
            star, alg1 = c["rows"]["EMA*"]["scores"][space], c["rows"]["alg1"]["scores"][space]
            total += 1
            below_star += int(v < star)
            below_alg1 += int(v < alg1)
            gains.setdefault(f"{c['model']}/{space}", []).append(1 - v / star)
    return {"triples": total, "below_ema_star": below_star, "below_alg1": below_alg1,
            "mean_gain_vs_ema_star": {k: round(float(np.mean(v)), 4) for k, v in gains.items()}}


def summary(cells: list[dict[str, Any]], row: str) -> dict[str, Any]:
    """Costs of ``row`` vs the demo's Alg. 1 (means over cells, per model)."""
    out = {}
    for model in sorted({c["model"] for c in cells}):
        mine = [c for c in cells if c["model"] == model and row in c["rows"]]
        if not mine:
            continue
        out[model] = {k: round(float(np.mean([c["rows"][r][k] for c in mine])), 1)
                      for r, k in ((row, "cpu_s"), (row, "samples"))}
        out[model].update({f"alg1_{k}": round(float(np.mean([c["rows"]["alg1"][k] for c in mine])), 1)
                           for k in ("cpu_s", "samples")})
    return out


def efficiency(cells: list[dict[str, Any]], setting: str, alg1_target: dict[str, float],
               alg1_cost: dict[str, dict[str, float]], steps: tuple[int, ...]) -> dict[str, Any]:
    """The first trajectory point whose mean held-out FD_digits (over seeds) reaches Algorithm 1's long-budget
    result ``alg1_target[model]``, with its samples and core-seconds (pro rata of the search's) as fractions of
    Algorithm 1's ``alg1_cost[model]`` ({"samples", "cpu_s"})."""
    out = {}
    for model, target in alg1_target.items():
        mine = [c for c in cells if c["model"] == model and f"grad-{setting}" in c["rows"]]
        if not mine:
            continue
        full = mine[0]["rows"][f"grad-{setting}"]["steps"]
        points = [(t, f"grad-{setting}@{t}") for t in steps if t < full] + [(full, f"grad-{setting}")]
        reached = None
        for t, name in points:
            fd = float(np.mean([c["rows"][name]["scores"]["digits"] for c in mine if name in c["rows"]]))
            if fd <= target:
                samples = float(np.mean([c["rows"][name]["samples"] for c in mine]))
                cpu = float(np.mean([c["rows"][f"grad-{setting}"]["cpu_s"] * t / full for c in mine]))
                reached = {"steps": t, "held_out_fd_digits": round(fd, 2), "samples": samples, "cpu_s": round(cpu, 1),
                           "samples_fraction": round(samples / alg1_cost[model]["samples"], 3),
                           "cpu_fraction": round(cpu / alg1_cost[model]["cpu_s"], 3)}
                break
        out[model] = {"alg1_target_fd_digits": target, "reached": reached}
    return out


def plot(cells: list[dict[str, Any]], settings: list[str], alg1_curves: dict[str, list[dict]] | None, path) -> None:
    """Held-out FD (mean over seeds) against samples drawn, per model and space: each gradient setting's trajectory
    (last iterates, then the export), the demo's Alg. 1, EMA*, and Alg. 1's long-budget curve when given."""
    import matplotlib.pyplot as plt

    from lcsc.report.plots import save_figure

    models = sorted({c["model"] for c in cells})
    spaces = list(cells[0]["rows"]["EMA*"]["scores"])
    fig, axes = plt.subplots(len(models), len(spaces), figsize=(5 * len(spaces), 4 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        mine = [c for c in cells if c["model"] == model]
        for ax, space in zip(row, spaces):
            def mean(name: str, space: str = space, mine: list = mine) -> float:
                return float(np.mean([c["rows"][name]["scores"][space] for c in mine]))

            for s in settings:
                names = sorted((n for n in mine[0]["rows"] if n.startswith(f"grad-{s}@")),
                               key=lambda n: int(n.rpartition("@")[2])) + [f"grad-{s}"]
                names = [n for n in names if all(n in c["rows"] for c in mine)]
                xs = [float(np.mean([c["rows"][n]["samples"] for c in mine])) for n in names]
                ax.plot(xs, [mean(n) for n in names], marker="o", ms=3, label=f"gradient {s}")
            ax.scatter([float(np.mean([c["rows"]["alg1"]["samples"] for c in mine]))], [mean("alg1")], marker="s",
                       color="k", label="demo's Alg. 1 (anchored + guard)", zorder=3)
            ax.axhline(mean("EMA*"), color="gray", ls="--", label="EMA*")
            if alg1_curves and space in ("digits", "digits2", "digits3"):
                curve = alg1_curves[model]
                ax.plot([r["samples"] for r in curve], [r[f"{space}_mean"] for r in curve], color="k", ls=":",
                        label="Alg. 1, window only (search_efficiency.json)")
            ax.set(xscale="log", xlabel="samples drawn by the search", ylabel=f"held-out {LABELS[space]}",
                   title=f"{model}: {LABELS[space]}")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
    save_figure(fig, path)
