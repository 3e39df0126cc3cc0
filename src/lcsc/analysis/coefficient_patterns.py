# LCSC paper (Liu et al.), Fig. 5: the searched coefficient patterns against the EMA profile, and search convergence.
"""Coefficient patterns of LCSC searches.

For each search folder the exported coefficients are read with :func:`lcsc.search.exported_coefficients`: what the
search reports as its best (Algorithm 1: the validation guard's pick when the journal holds one, else the best
full-count score; a journalled shrink applied; a gradient search: the guard's pick among its last iterate, averaged
iterate and best anchor). An anchored search's vector is the window's checkpoints then the anchors (EMA weights):
the window part is plotted against checkpoint step (Fig. 5) and carries the statistics, the anchors' weights are
reported by name beside it. Per search: negative mass ``Σ|aₖ|`` over negative window ``aₖ``, the effective window
(the fewest most recent checkpoints holding ``mass`` of the window's ``Σ|aₖ|``), ``(Σaₖ)²/Σaₖ²`` over the window,
the anchors' total weight and the best-score-so-far curve of ``journal.jsonl`` (for a gradient search: its initial
population; the Adam steps are in ``gradient.jsonl``). Searches over the same checkpoint steps are compared by the
Pearson correlation of their window parts. EMA profiles over the window: online EMAs of given half-lives
(:func:`ema_coefficients`), and a report's EMA* choice at the window end (online ``hl-H`` exactly; post-hoc
``sigma-S`` as the power profile's mass per checkpoint interval, the mass before the window on the first checkpoint).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.errors import ConfigError
from lcsc.merge.profiles import power_cdf
from lcsc.objectives.base import direction_sign
from lcsc.search import ema_coefficients, exported_coefficients, half_life_to_rate
from lcsc.search.journal import Journal
from lcsc.search.ranking import FULL
from lcsc.training.phema import sigma_rel_to_gamma

__all__ = ["SearchPattern", "load_search", "negative_mass", "effective_window", "participation",
           "pearson", "ema_profile", "ema_star_profile", "coefficient_patterns", "plot_coefficient_patterns",
           "patterns_markdown"]


@dataclass
class SearchPattern:
    """One search: its label, window steps, exported window coefficients (K_window; groups averaged), the anchors'
    names and weights (groups averaged), the export's name and score, and convergence. ``kind`` is
    :attr:`lcsc.search.ExportedCoefficients.label` (``alg1``, ``alg1-anchored``, ``gradient-anchored``, …);
    ``best_score`` is None when the export has no score (a gradient guard without validation scores)."""

    name: str
    path: str
    steps: list[int]
    coefficients: list[float]
    best_score: float | None
    best_index: int
    direction: str
    groups: int
    checkpoints: str  # identity of the window's checkpoint files (hash of the journal header's window hashes)
    kind: str = "alg1"
    export: str | None = None  # the exported individual's name (e.g. "averaged iterate", "anchor ema:hl-32")
    chosen_by: str = "search noise"
    anchors: list[str] = field(default_factory=list)
    anchor_weights: list[float] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (evaluations, best score so far)
    stats: dict[str, Any] = field(default_factory=dict)


def _curve(journal: Journal, direction: str) -> list[tuple[int, float]]:
    """Best full-count score so far after each evaluation (records in journal order)."""
    sign, best, out = direction_sign(direction), None, []
    for n, r in enumerate((r for r in journal.records if r.get("status") != "cached"), start=1):
        ok = r.get("stage") == FULL and r.get("status") == "ok" and r.get("score") is not None
        if ok and (best is None or sign * r["score"] < sign * best):
            best = float(r["score"])
        if best is not None:
            out.append((n, best))
    return out


def load_search(folder: str | Path, name: str | None = None) -> SearchPattern:
    """The exported coefficients of the search in ``folder`` (plain, anchored or gradient; a ConfigError naming the
    folder when it is not a search folder)."""
    folder = Path(folder)
    ex = exported_coefficients(folder)
    journal = Journal.load(folder / "journal.jsonl")
    window = ex.hashes[: ex.K_window]
    ident = hashlib.sha256("".join(window).encode()).hexdigest()[:16]
    score = ex.score if math.isfinite(ex.score) else None
    return SearchPattern(name or folder.name, str(folder), list(ex.steps), ex.window.mean(axis=0).tolist(), score,
                         ex.index, ex.direction, int(ex.coefficients.shape[0]), ident, ex.label, ex.name,
                         ex.chosen_by, ex.anchor_names, ex.anchor_part.mean(axis=0).tolist(),
                         _curve(journal, ex.direction))


def negative_mass(a: np.ndarray) -> float:
    """Σ |aₖ| over the negative coefficients."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.abs(a[a < 0]).sum())


def effective_window(a: np.ndarray, mass: float = 0.9) -> int:
    """The fewest most recent checkpoints whose |aₖ| hold at least ``mass`` of Σ|aₖ|."""
    if not 0.0 < mass <= 1.0:
        raise ConfigError(f"mass {mass} must be in (0, 1]")
    w = np.abs(np.asarray(a, dtype=np.float64))[::-1]
    if not w.sum() > 0:
        return 0  # nothing on these checkpoints (an anchored export on its anchors alone)
    share = np.cumsum(w) / w.sum()
    return int(np.searchsorted(share, mass - 1e-12) + 1)


def participation(a: np.ndarray) -> float:
    """1 / Σ (aₖ/Σa)² = (Σa)² / Σa²: the number of equally weighted checkpoints with the same spread (0 for an
    all-zero vector)."""
    a = np.asarray(a, dtype=np.float64)
    square = float(np.sum(a * a))
    return float(a.sum() ** 2 / square) if square > 0 else 0.0


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two coefficient vectors (NaN when either is constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _interval(steps: list[int]) -> int:
    gaps = set(np.diff(steps).tolist())
    if len(gaps) != 1:
        raise ConfigError(f"checkpoint steps {steps[:3]}… are not evenly spaced; no EMA profile over them")
    return int(gaps.pop())


def ema_profile(steps: list[int], half_life: float) -> np.ndarray:
    """An online EMA of ``half_life`` iterations, started at the window's first checkpoint, over the window."""
    return ema_coefficients(len(steps), half_life_to_rate(half_life), _interval(steps))


def ema_star_profile(steps: list[int], choice: str) -> np.ndarray:
    """The profile of an EMA* choice over the window: ``hl-H`` as :func:`ema_profile`; ``sigma-S`` as the power
    profile (γ from σ_rel, ending at the last step) mass on each checkpoint's interval, earlier mass on the first."""
    if choice.startswith("hl-"):
        return ema_profile(steps, float(choice.removeprefix("hl-")))
    if not choice.startswith("sigma-"):
        raise ConfigError(f"EMA* choice {choice!r} is neither hl-H nor sigma-S")
    t = np.asarray(steps, dtype=np.float64)
    cdf = power_cdf(t[-1], sigma_rel_to_gamma(float(choice.removeprefix("sigma-"))), t)
    return np.diff(np.concatenate([[0.0], cdf]))


def _stats(a: np.ndarray, interval: int, mass: float) -> dict[str, float]:
    n = effective_window(a, mass)
    return {"negative_mass": negative_mass(a), "effective_window": n, "effective_window_steps": n * interval,
            "participation": participation(a), "sum": float(a.sum()), "max_abs": float(np.abs(a).max())}


def _anchor_stats(p: SearchPattern) -> dict[str, Any]:
    """The anchors' total weight and each anchor's weight by name (groups averaged)."""
    return {"anchor_weight": float(np.sum(p.anchor_weights)) if p.anchors else 0.0,
            "anchor_weights": dict(zip(p.anchors, p.anchor_weights))}


def _correlations(patterns: list[SearchPattern]) -> tuple[list[dict], list[str]]:
    pairs, notes = [], []
    for p, q in itertools.combinations(patterns, 2):
        if p.steps != q.steps:
            notes.append(f"{p.name} vs {q.name}: different windows, no correlation")
            continue
        r = pearson(p.coefficients, q.coefficients)
        if math.isnan(r):
            notes.append(f"{p.name} vs {q.name}: a window part is constant (e.g. all weight on the anchors), "
                         "no correlation")
            continue
        pairs.append({"a": p.name, "b": q.name, "pearson": r, "same_checkpoints": p.checkpoints == q.checkpoints})
    return pairs, notes


def _report_choice(report: dict, name: str, end: int) -> tuple[str | None, str | None]:
    star = report.get("ema_star", {})
    base = name.rsplit("-", 1)[0] if name.rsplit("-", 1)[-1].isdigit() else name
    for key in (base, base.split("-")[0]):
        if key in star and str(end) in star[key]:
            return key, star[key][str(end)]
    return None, None


def coefficient_patterns(folders: list[str | Path], half_lives: list[float] = (), report: dict | None = None,
                         mass: float = 0.9) -> dict[str, Any]:
    """Everything Fig. 5 needs: per search the pattern and stats, EMA profiles, correlations and notes."""
    if not folders:
        raise ConfigError("give at least one search folder")
    names = [Path(f).name for f in folders]
    patterns = [load_search(f, n if names.count(n) == 1 else f"{n}#{i}") for i, (f, n) in
                enumerate(zip(folders, names))]
    notes = [f"{p.name}: {p.groups} groups, coefficients averaged over groups" for p in patterns if p.groups > 1]
    notes += [f"{p.name}: a gradient search; its convergence curve is the initial population (journal.jsonl), the "
              "Adam steps are in gradient.jsonl" for p in patterns if p.kind.startswith("gradient")]
    for p in patterns:
        interval = int(np.diff(p.steps).min()) if len(p.steps) > 1 else 1
        p.stats = _stats(np.asarray(p.coefficients), interval, mass) | _anchor_stats(p)
        profiles = {f"ema-hl{h:g}": ema_profile(p.steps, h) for h in half_lives}
        if report is not None:
            model, choice = _report_choice(report, p.name.split("#")[0], p.steps[-1])
            if choice is None:
                notes.append(f"{p.name}: no EMA* choice in the report at step {p.steps[-1]}")
            else:
                profiles[f"ema*={choice}"] = ema_star_profile(p.steps, choice)
        p.stats["profiles"] = {k: {"coefficients": v.tolist(), **_stats(v, interval, mass)}
                               for k, v in profiles.items()}
    pairs, more = _correlations(patterns)
    return {"mass": mass, "searches": [asdict(p) for p in patterns], "correlations": pairs, "notes": notes + more}


def plot_coefficient_patterns(data: dict[str, Any]) -> Any:
    """Coefficients of the window vs checkpoint step (EMA profiles dashed), best score vs evaluations and, when a
    search has anchors, a bar panel of the anchors' weights by name."""
    from lcsc.report.plots import plt

    anchored = any(s["anchors"] for s in data["searches"])
    fig, axes = plt.subplots(1, 3 if anchored else 2, figsize=(17 if anchored else 12, 4.5))
    ax, bx, colors = axes[0], axes[1], []
    for s in data["searches"]:
        line, = ax.plot(s["steps"], s["coefficients"], marker=".", ms=3, lw=1, label=s["name"])
        colors.append(line.get_color())
        for k, prof in s["stats"]["profiles"].items():
            ax.plot(s["steps"], prof["coefficients"], ls="--", lw=1, color=line.get_color(),
                    label=f"{s['name']} {k}")
        if s["curve"]:
            e, v = zip(*s["curve"])
            bx.step(e, v, where="post", label=s["name"], color=line.get_color())
    ax.axhline(0.0, color="grey", lw=0.5)
    title = "exported coefficients" + (": window part" if anchored else "") + " (dashed: EMA profiles)"
    ax.set(xlabel="checkpoint step", ylabel="coefficient", title=title)
    bx.set(xlabel="evaluations", ylabel="best score so far", title="search convergence")
    ax.legend(fontsize=7)
    bx.legend(fontsize=7)
    if anchored:
        _anchor_bars(axes[2], data["searches"], colors)
    fig.tight_layout()
    return fig


def _anchor_bars(ax: Any, searches: list[dict[str, Any]], colors: list[str]) -> None:
    """Grouped bars: one group per anchor name, one bar per search (the window's total weight as the first group)."""
    names = list(dict.fromkeys(n for s in searches for n in s["anchors"]))
    groups = ["window Σ"] + names
    width = 0.8 / len(searches)
    for i, (s, color) in enumerate(zip(searches, colors)):
        weights = [s["stats"]["sum"]] + [s["stats"]["anchor_weights"].get(n, 0.0) for n in names]
        ax.bar(np.arange(len(groups)) + (i - (len(searches) - 1) / 2) * width, weights, width, label=s["name"],
               color=color)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xticks(np.arange(len(groups)), groups, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="coefficient", title="anchor weights (and the window's total)")
    ax.legend(fontsize=7)


def patterns_markdown(data: dict[str, Any]) -> str:
    """Key numbers: per search and profile, negative mass and effective window; each export and its anchors'
    weights; correlations; notes."""
    pct = int(round(100 * data["mass"]))
    lines = ["# Coefficient patterns (LCSC Fig. 5)", "",
             f"| search | profile | best score | negative mass | {pct}% window (ckpts / steps) | (Σa)²/Σa² |",
             "|---|---|---|---|---|---|"]
    for s in data["searches"]:
        score = "—" if s["best_score"] is None else f"{s['best_score']:.4g}"
        rows = [("LCSC", s["stats"], score)] + [(k, v, "") for k, v in s["stats"]["profiles"].items()]
        for label, st, sc in rows:
            lines.append(f"| {s['name']} | {label} | {sc} | {st['negative_mass']:.3f} | "
                         f"{st['effective_window']} / {st['effective_window_steps']} | {st['participation']:.1f} |")
    lines += ["", "Statistics are over the window's checkpoints; an anchored search's anchors (EMA weights, rows "
              "after the window) are listed here:", "",
              "| search | kind | export (chosen by) | window Σa | anchors Σa | anchor weights |", "|---|---|---|---|---|---|"]
    for s in data["searches"]:
        st = s["stats"]
        weights = ", ".join(f"`{n}` {w:.4f}" for n, w in st["anchor_weights"].items()) or "—"
        lines.append(f"| {s['name']} | {s['kind']} | {s['export'] or '—'} ({s['chosen_by']}) | {st['sum']:.4f} | "
                     f"{st['anchor_weight']:.4f} | {weights} |")
    if data["correlations"]:
        lines += ["", "| search A | search B | Pearson r (window) | same checkpoint files |", "|---|---|---|---|"]
        lines += [f"| {c['a']} | {c['b']} | {c['pearson']:.3f} | {'yes' if c['same_checkpoints'] else 'no'} |"
                  for c in data["correlations"]]
    if data["notes"]:
        lines += [""] + [f"- {n}" for n in data["notes"]]
    return "\n".join(lines)
