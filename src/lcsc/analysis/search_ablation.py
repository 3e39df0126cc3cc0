# Search hyper-parameter ablation (Liu et al., LCSC, Tabs. 4 and 9: samples per evaluation; Tab. 14: convex hull).
"""Equal-budget LCSC searches (Algorithm 1) under settings varied one factor at a time from the default.

Factors: ``samples`` (images per evaluation, a prefix of the search noise), ``sigma`` (multiples of the default
mutation σ = 1/K), ``parents`` (the parent pool M) and ``convex`` (children clipped to a ≥ 0 before Σa = 1, the
paper's Tab. 14 restriction; ``SearchConfig.convex``). Every setting is searched with each search seed on the same
evaluation budget; the best individual (chosen on search noise) is then scored once on the objective's held-out
noise (``objective.held_out()``, a fixed sample count), which only reports. Identical states (the EMA initial
individuals every search starts from) are scored once per sample count and reused: the results equal unshared runs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lcsc.errors import ConfigError
from lcsc.search import SearchConfig, run_search

__all__ = ["FACTORS", "Setting", "AblationPlan", "make_plan", "estimate_seconds", "run_ablation", "summarize",
           "plot_ablation", "ablation_markdown"]

FACTORS = ("samples", "sigma", "parents", "convex")


@dataclass(frozen=True)
class Setting:
    """One search setting: samples per evaluation, σ as a multiple of 1/K, parent pool M, convex restriction."""

    factor: str  # "default" or the one factor changed from the default
    samples: int
    sigma_mult: float = 1.0
    parents: int = 10
    convex: bool = False

    @property
    def name(self) -> str:
        if self.factor == "default":
            return "default"
        value = {"samples": self.samples, "sigma": f"{self.sigma_mult:g}×", "parents": self.parents,
                 "convex": "on" if self.convex else "off"}[self.factor]
        return f"{self.factor}={value}"

    def search_config(self, K: int, evals: int, seed: int) -> SearchConfig:
        """Algorithm 1's config for this setting (σ = sigma_mult / K)."""
        return SearchConfig(evals=evals, seed=seed, sigma=self.sigma_mult / K, parents=self.parents,
                            convex=self.convex)


@dataclass(frozen=True)
class AblationPlan:
    """The settings (the default first), the search seeds and the evaluation budget of every search."""

    settings: tuple[Setting, ...]
    seeds: tuple[int, ...]
    evals: int

    @property
    def searches(self) -> int:
        return len(self.settings) * len(self.seeds)

    @property
    def max_samples(self) -> int:
        return max(s.samples for s in self.settings)

    def describe(self) -> str:
        """The plan as a few lines of text."""
        lines = [f"{len(self.settings)} settings × {len(self.seeds)} search seeds = {self.searches} searches of "
                 f"{self.evals} evaluations"]
        lines += [f"  {s.name:<16} samples {s.samples}, σ {s.sigma_mult:g}/K, parents {s.parents}, "
                  f"convex {s.convex}" for s in self.settings]
        return "\n".join(lines)


_FIELD = {"samples": "samples", "sigma": "sigma_mult", "parents": "parents", "convex": "convex"}


def make_plan(factors: dict[str, Sequence], *, samples: int, evals: int, seeds: int, parents: int = 10) -> AblationPlan:
    """The default setting (``samples``, σ = 1/K, ``parents``, unrestricted) and, for each factor, one setting per
    value that differs from the default; searched with seeds 0…seeds−1 on ``evals`` evaluations each."""
    unknown = [f for f in factors if f not in FACTORS]
    if unknown:
        raise ConfigError(f"unknown factor(s) {', '.join(map(repr, unknown))}: choose from {', '.join(FACTORS)}")
    if seeds < 1:
        raise ConfigError(f"search seeds = {seeds}: need at least 1")
    if evals < 1 or samples < 2 or parents < 1:
        raise ConfigError(f"evals={evals}, samples={samples}, parents={parents}: need evals, parents >= 1 and "
                          "samples >= 2")
    default = Setting("default", samples=samples, parents=parents)
    settings = [default]
    for factor, values in factors.items():
        for value in values:
            kind = bool if factor == "convex" else (float if factor == "sigma" else int)
            s = replace(default, factor=factor, **{_FIELD[factor]: kind(value)})
            _check_value(s)
            if getattr(s, _FIELD[factor]) != getattr(default, _FIELD[factor]) and s not in settings:
                settings.append(s)
    return AblationPlan(tuple(settings), tuple(range(seeds)), evals)


def _check_value(s: Setting) -> None:
    if s.samples < 2 or s.parents < 1 or not (0 < s.sigma_mult < float("inf")):
        raise ConfigError(f"setting {s.name}: samples must be >= 2, parents >= 1 and the σ multiple > 0")


def _state_key(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class _Memo:
    """An objective whose scores are remembered by state (shared by every search on the same objective)."""

    def __init__(self, inner: Any, cache: dict[str, float]) -> None:
        self._inner, self._cache = inner, cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def score(self, state: dict[str, torch.Tensor]) -> float:
        key = _state_key(state)
        if key not in self._cache:
            self._cache[key] = float(self._inner.score(state))
        return self._cache[key]

    def score_many(self, states: list[dict[str, torch.Tensor]]) -> list[float]:
        return [self.score(s) for s in states]


def _with_samples(objective: Any, n: int) -> Any:
    if getattr(objective, "num_samples", None) == n:
        return objective
    if not hasattr(objective, "with_samples") or getattr(objective, "num_samples", 0) < n:
        raise ConfigError(f"samples={n}: the objective must draw at least {n} samples and offer with_samples(n) "
                          f"(it has num_samples={getattr(objective, 'num_samples', None)})")
    return objective.with_samples(n)


def _objectives(objective: Any, plan: AblationPlan) -> dict[int, Any]:
    """One (memoised unless calibrated) search objective per sample count of the plan."""
    out = {}
    for n in sorted({s.samples for s in plan.settings}):
        obj = _with_samples(objective, n)
        out[n] = obj if hasattr(obj, "calibrate") else _Memo(obj, {})
    return out


def _held_out(objective: Any, held_out_samples: int | None) -> Any:
    if not hasattr(objective, "held_out"):
        raise ConfigError("the ablation needs an objective with held_out() (another noise seed) to report on")
    held = objective.held_out()
    return _with_samples(held, held_out_samples) if held_out_samples else held


def _check(merger: Any, plan: AblationPlan) -> None:
    if merger.K < 2:
        raise ConfigError(f"the window has {merger.K} checkpoint(s); a linear combination needs at least 2")


def run_ablation(merger: Any, objective: Any, plan: AblationPlan, work_dir: str | Path, *,
                 held_out_samples: int | None = None, progress: bool = True,
                 on_search: Callable[[dict], None] | None = None) -> list[dict[str, Any]]:
    """Run every (setting, seed) search of ``plan`` on ``merger``'s window against ``objective`` (search noise; a
    prefix of its samples per setting), journals under ``work_dir`` (an existing journal is resumed), and score each
    best individual and best initial individual on held-out noise. Returns one dict per search."""
    _check(merger, plan)
    searches, held = _objectives(objective, plan), _Memo(_held_out(objective, held_out_samples), {})
    rows = []
    bar = tqdm(total=plan.searches, desc="search ablation", unit="search", disable=not progress)
    for setting in plan.settings:
        for seed in plan.seeds:
            out = Path(work_dir) / setting.name.replace("×", "x") / f"seed-{seed}"
            cfg = setting.search_config(merger.K, plan.evals, seed)
            t0 = time.perf_counter()
            result = run_search(merger, searches[setting.samples], cfg, out,
                                resume=(out / "journal.jsonl").is_file(), progress=False)
            best, init = merger.merge_many(np.stack([result.best, result.best_initial]))
            row = {"setting": setting.name, **asdict(setting), "seed": seed, "evals": result.evaluations,
                   "samples_spent": result.samples, "search_best": result.best_score,
                   "held_out": held.score(best), "init_name": result.best_initial_name,
                   "init_held_out": held.score(init), "coefficients": np.asarray(result.best).ravel().tolist(),
                   "wall_s": time.perf_counter() - t0}
            rows.append(row)
            if on_search:
                on_search(row)
            bar.update(1)
    bar.close()
    return rows


def estimate_seconds(merger: Any, objective: Any, plan: AblationPlan, held_out_samples: int | None = None,
                     init_count: int = 6) -> dict[str, float]:
    """Time one merge + evaluation at the plan's largest sample count and extrapolate linearly in samples (the
    initial individuals are scored once per sample count)."""
    _check(merger, plan)
    n = plan.max_samples
    obj = _with_samples(objective, n)
    a = np.zeros(merger.K * merger.G)
    a[-1] = 1.0
    obj.score(merger.merge_many(a[None])[0])  # warm-up (draws the noise, loads features)
    t0 = time.perf_counter()
    obj.score(merger.merge_many(a[None])[0])
    per_sample = (time.perf_counter() - t0) / n
    counts = {s.samples for s in plan.settings}
    evals = sum(s.samples * (plan.evals - init_count) * len(plan.seeds) for s in plan.settings)
    evals += init_count * sum(counts)
    held = (held_out_samples or getattr(objective, "num_samples", n)) * (plan.searches + len(counts))
    return {"seconds_per_sample": per_sample, "search_s": evals * per_sample, "held_out_s": held * per_sample,
            "total_s": (evals + held) * per_sample}


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setting (in plan order): held-out FD mean ± std over seeds, mean search-noise best, mean held-out FD of
    the best initial individual (the EMA the search started from) and the mean wall time per search."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        e = out.setdefault(r["setting"], {k: r[k] for k in ("setting", "factor", "samples", "sigma_mult", "parents",
                                                            "convex")} | {"held": [], "search": [], "init": [],
                                                                          "wall": []})
        e["held"].append(r["held_out"])
        e["search"].append(r["search_best"])
        e["init"].append(r["init_held_out"])
        e["wall"].append(r["wall_s"])
    table = []
    for e in out.values():
        held = np.asarray(e.pop("held"))
        table.append(e | {"runs": len(held), "held_out_mean": float(held.mean()), "held_out_std": float(held.std()),
                          "held_out": held.tolist(), "search_best_mean": float(np.mean(e.pop("search"))),
                          "init_held_out_mean": float(np.mean(e.pop("init"))),
                          "wall_s_mean": float(np.mean(e.pop("wall")))})
    return table


def plot_ablation(table: list[dict[str, Any]], title: str = ""):
    """Held-out FD mean ± std per setting, grouped (coloured) by factor; the default's mean as a dashed line."""
    from lcsc.report.plots import plt

    fig, ax = plt.subplots(figsize=(max(4.5, 0.7 * len(table) + 1.5), 3.4))
    colors = {f: plt.cm.tab10(i) for i, f in enumerate(("default", *FACTORS))}
    for i, row in enumerate(table):
        ax.errorbar(i, row["held_out_mean"], yerr=row["held_out_std"], fmt="o", capsize=4,
                    color=colors[row["factor"]], label=row["factor"])
    ax.axhline(table[0]["held_out_mean"], color="0.5", ls="--", lw=0.8)
    ax.set_xticks(range(len(table)), [r["setting"] for r in table], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("held-out FD (mean ± std over seeds)")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def ablation_markdown(table: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """The table (setting → held-out FD mean ± std, search-noise best, best initial individual) with the run's
    sizes stated above it."""
    from lcsc.report.tables import markdown_table

    cols = [("setting", lambda r: r["setting"]), ("samples/eval", lambda r: str(r["samples"])),
            ("σ", lambda r: f"{r['sigma_mult']:g}/K"), ("parents M", lambda r: str(r["parents"])),
            ("convex", lambda r: "yes" if r["convex"] else "no"),
            ("held-out FD (mean ± std)", lambda r: f"{r['held_out_mean']:.3f} ± {r['held_out_std']:.3f}"),
            ("search-noise best (mean)", lambda r: f"{r['search_best_mean']:.3f}"),
            ("best initial, held-out", lambda r: f"{r['init_held_out_mean']:.3f}"), ("runs", lambda r: str(r["runs"]))]
    head = [f"# Search ablation: {info.get('window', '')}", "",
            f"Objective {info.get('objective')} (search noise seed {info.get('noise_seed')}); held-out noise seed "
            f"{info.get('held_out_seed')} at {info.get('held_out_samples')} samples. Every search: Algorithm 1, "
            f"{info.get('evals')} evaluations (6 EMA initial individuals + children), search seeds "
            f"{info.get('seeds')}. Default: {info.get('default')}. Wall time {info.get('wall_s', 0):.0f} s.", "",
            "Search-noise scores are on each setting's own sample count (FD is biased upwards at fewer samples), so "
            "only the held-out column compares settings; the best individual is always chosen on search noise.", "", ""]
    return "\n".join(head) + markdown_table(table, cols) + "\n"
