# LCSC paper (Liu et al.), Fig. 5: the searched coefficient patterns against the EMA profile, and search convergence.
"""Coefficient patterns of LCSC searches.

For each search folder (``journal.jsonl``) the best coefficients are recovered the way the search reports them:
the revalidation pick when the journal holds one, else the best full-count successful record (a shrink record,
which stores no coefficients, is not applied). Per search: negative mass ``Σ|aₖ|`` over negative ``aₖ``, the
effective window (the fewest most recent checkpoints holding ``mass`` of ``Σ|aₖ|``) and ``1/Σaₖ²``, and the
best-score-so-far curve. Searches over the same checkpoint steps are compared by the Pearson correlation of their
coefficient vectors. EMA profiles over the window: online EMAs of given half-lives (:func:`ema_coefficients`), and
a report's EMA* choice at the window end (online ``hl-H`` exactly; post-hoc ``sigma-S`` as the power profile's
mass per checkpoint interval, the mass before the window on the first checkpoint).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.errors import ConfigError
from lcsc.merge.profiles import power_cdf
from lcsc.objectives.base import direction_sign
from lcsc.search import ema_coefficients, half_life_to_rate
from lcsc.search.journal import Journal
from lcsc.search.ranking import FULL, best_full_record
from lcsc.training.phema import sigma_rel_to_gamma

__all__ = ["SearchPattern", "load_search", "negative_mass", "effective_window", "participation",
           "pearson", "ema_profile", "ema_star_profile", "coefficient_patterns", "plot_coefficient_patterns",
           "patterns_markdown"]


@dataclass
class SearchPattern:
    """One search: its label, window steps, best coefficients (K; groups averaged), score and convergence."""

    name: str
    path: str
    steps: list[int]
    coefficients: list[float]
    best_score: float
    best_index: int
    direction: str
    groups: int
    checkpoints: str  # identity of the window's checkpoint files (hash of the journal header's hashes)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (evaluations, best score so far)
    stats: dict[str, float] = field(default_factory=dict)


def _best_record(journal: Journal, direction: str) -> dict[str, Any]:
    ok = [r for r in journal.records if r.get("status") == "ok"]
    best = best_full_record(ok, direction)
    if best is None:
        raise ConfigError(f"{journal.path}: holds no successful full-count evaluation")
    reval = journal.find_meta("revalidation")
    if reval is not None and reval.get("picked") is not None:  # None: every validation score failed
        picked = reval["candidates"][reval["picked"]]
        hit = [r for r in ok if r["candidate"] == picked and r.get("stage") == FULL and r.get("score") is not None]
        if hit:
            return hit[0]
    return best


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
    """Read ``folder/journal.jsonl`` (a ConfigError naming the folder when there is none)."""
    folder = Path(folder)
    path = folder / "journal.jsonl"
    if not path.is_file():
        raise ConfigError(f"{folder}: no journal.jsonl (not an lcsc search folder)")
    journal = Journal.load(path)
    direction = journal.header.get("objective", {}).get("direction", "minimize")
    best = _best_record(journal, direction)
    a = np.atleast_2d(np.asarray(best["coefficients"], dtype=np.float64))
    steps = [int(s) for s in journal.header["steps"]]
    if a.shape[1] != len(steps):
        raise ConfigError(f"{path}: coefficients of length {a.shape[1]} for {len(steps)} checkpoint steps")
    ident = hashlib.sha256("".join(journal.header.get("hashes", [])).encode()).hexdigest()[:16]
    return SearchPattern(name or folder.name, str(folder), steps, a.mean(axis=0).tolist(), float(best["score"]),
                         int(best["index"]), direction, int(a.shape[0]), ident, _curve(journal, direction))


def negative_mass(a: np.ndarray) -> float:
    """Σ |aₖ| over the negative coefficients."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.abs(a[a < 0]).sum())


def effective_window(a: np.ndarray, mass: float = 0.9) -> int:
    """The fewest most recent checkpoints whose |aₖ| hold at least ``mass`` of Σ|aₖ|."""
    if not 0.0 < mass <= 1.0:
        raise ConfigError(f"mass {mass} must be in (0, 1]")
    w = np.abs(np.asarray(a, dtype=np.float64))[::-1]
    share = np.cumsum(w) / w.sum()
    return int(np.searchsorted(share, mass - 1e-12) + 1)


def participation(a: np.ndarray) -> float:
    """1 / Σ (aₖ/Σa)²: the number of equally weighted checkpoints with the same spread."""
    a = np.asarray(a, dtype=np.float64)
    a = a / a.sum()
    return float(1.0 / np.sum(a * a))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two coefficient vectors."""
    return float(np.corrcoef(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))[0, 1])


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


def _correlations(patterns: list[SearchPattern]) -> tuple[list[dict], list[str]]:
    pairs, notes = [], []
    for p, q in itertools.combinations(patterns, 2):
        if p.steps != q.steps:
            notes.append(f"{p.name} vs {q.name}: different windows, no correlation")
            continue
        pairs.append({"a": p.name, "b": q.name, "pearson": pearson(p.coefficients, q.coefficients),
                      "same_checkpoints": p.checkpoints == q.checkpoints})
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
    for p in patterns:
        interval = int(np.diff(p.steps).min()) if len(p.steps) > 1 else 1
        p.stats = _stats(np.asarray(p.coefficients), interval, mass)
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


def plot_coefficient_patterns(data: dict[str, Any]):
    """Two panels: coefficients vs checkpoint step (EMA profiles dashed), and best score vs evaluations."""
    from lcsc.report.plots import plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    for s in data["searches"]:
        line, = ax.plot(s["steps"], s["coefficients"], marker=".", ms=3, lw=1, label=s["name"])
        for k, prof in s["stats"]["profiles"].items():
            ax.plot(s["steps"], prof["coefficients"], ls="--", lw=1, color=line.get_color(),
                    label=f"{s['name']} {k}")
        if s["curve"]:
            e, v = zip(*s["curve"])
            bx.step(e, v, where="post", label=s["name"])
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set(xlabel="checkpoint step", ylabel="coefficient", title="best coefficients (dashed: EMA profiles)")
    bx.set(xlabel="evaluations", ylabel="best score so far", title="search convergence")
    ax.legend(fontsize=7)
    bx.legend(fontsize=7)
    fig.tight_layout()
    return fig


def patterns_markdown(data: dict[str, Any]) -> str:
    """Key numbers: per search and profile, negative mass and effective window; correlations; notes."""
    pct = int(round(100 * data["mass"]))
    lines = ["# Coefficient patterns (LCSC Fig. 5)", "",
             f"| search | profile | best score | negative mass | {pct}% window (ckpts / steps) | 1/Σa² |",
             "|---|---|---|---|---|---|"]
    for s in data["searches"]:
        rows = [("LCSC", s["stats"], f"{s['best_score']:.4g}")] + \
               [(k, v, "") for k, v in s["stats"]["profiles"].items()]
        for label, st, score in rows:
            lines.append(f"| {s['name']} | {label} | {score} | {st['negative_mass']:.3f} | "
                         f"{st['effective_window']} / {st['effective_window_steps']} | {st['participation']:.1f} |")
    if data["correlations"]:
        lines += ["", "| search A | search B | Pearson r | same checkpoint files |", "|---|---|---|---|"]
        lines += [f"| {c['a']} | {c['b']} | {c['pearson']:.3f} | {'yes' if c['same_checkpoints'] else 'no'} |"
                  for c in data["correlations"]]
    if data["notes"]:
        lines += [""] + [f"- {n}" for n in data["notes"]]
    return "\n".join(lines)
