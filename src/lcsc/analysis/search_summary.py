# Summary of the equal-budget search comparison (issue 13): curves, gains over EMA*, sample efficiency.
"""Aggregate :func:`lcsc.analysis.search_efficiency.run_job` results.

- curves: per model and method, held-out FD (mean ± std over training × search seeds) in each space, and samples,
  at each budget;
- gains: per model, method and training seed, the held-out gain over EMA* (and over the best initial individual)
  in each space, ``(baseline − method) / baseline``; a space is *unseen* when the method's objective never used it;
- the best method is chosen on search-noise FD_digits at the maximum budget only (held-out scores only report);
- sample efficiency = Alg. 1's maximum budget ÷ the evaluations a method needs for its mean held-out FD_digits to
  reach Alg. 1's at that budget (None if it never does);
- the default search objective (:func:`objective_decision`), by a rule fixed before its results.

These are decisions: they read results of decision seeds scored on check noise only, in decision spaces only
(:func:`lcsc.protocol.check_decision_jobs` refuses anything else).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from lcsc.analysis.search_efficiency import SPACES
from lcsc.protocol import check_decision_jobs

__all__ = ["curves", "gains", "generalises", "matches", "best_method", "summary_line", "objective_decision",
           "OBJECTIVE_METHODS", "DEFAULT_OBJECTIVE"]

# the objectives `lcsc demo` / `--objective auto` may default to, each searched by Algorithm 1 in the benchmark
OBJECTIVE_METHODS = {"fd-digits": "alg1", "mean:fd-digits,fd-digits2": "alg1-mean12",
                     "max:fd-digits,fd-digits2": "alg1-max12"}
DEFAULT_OBJECTIVE = "mean:fd-digits,fd-digits2"


def _point(job: dict, evals: int | None = None, init: bool = False) -> dict | None:
    pts = [p for p in job["points"] if (p["init"] if init else p["evals"] == (evals or job["evals"]))]
    return pts[-1] if pts else None


def curves(jobs: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """model → method → [{evals, samples, <space>_mean, <space>_std, search_digits}] over all seeds."""
    check_decision_jobs(jobs, "search_summary.curves")
    by: dict[tuple, list[dict]] = defaultdict(list)
    for j in jobs:
        for p in j["points"]:
            by[(j["model"], j["method"], p["evals"])].append(p)
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for (model, method, evals), pts in sorted(by.items()):
        search = [p["search"]["digits"] for p in pts if p["search"].get("digits") is not None]
        row = {"evals": evals, "runs": len(pts), "samples": float(np.mean([p["samples"] for p in pts])),
               "search_digits": float(np.mean(search)) if len(search) == len(pts) else None}
        for s in SPACES:
            v = [p["held_out"][s] for p in pts]
            row[f"{s}_mean"], row[f"{s}_std"] = float(np.mean(v)), float(np.std(v))
        out[model][method].append(row)
    return {m: dict(v) for m, v in out.items()}


def unseen(job_or_spec: dict) -> list[str]:
    spec = job_or_spec.get("method_spec", job_or_spec)
    return [s for s in SPACES if s not in spec["objective"]]


def gains(jobs: list[dict], ema: list[dict]) -> dict[str, dict[str, dict]]:
    """model → method → {per_seed: {seed: {space: gain}}, mean: {space: gain}, vs_init: {space: gain}}."""
    check_decision_jobs([*jobs, *ema], "search_summary.gains")
    star = {(e["model"], e["train_seed"]): e["held_out"] for e in ema}
    acc: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
    init_acc: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
    for j in jobs:
        final, first = _point(j), _point(j, init=True)
        base = star.get((j["model"], j["train_seed"]))
        if final is None or base is None:
            continue
        for s in SPACES:
            acc[(j["model"], j["method"], j["train_seed"])][s].append(1 - final["held_out"][s] / base[s])
            if first is not None:
                init_acc[(j["model"], j["method"])][s].append(1 - final["held_out"][s] / first["held_out"][s])
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for (model, method, seed), per_space in sorted(acc.items()):
        entry = out[model].setdefault(method, {"per_seed": {}, "mean": {}, "vs_init": {}})
        entry["per_seed"][seed] = {s: float(np.mean(v)) for s, v in per_space.items()}
    for model, methods in out.items():
        for method, entry in methods.items():
            seeds = entry["per_seed"].values()
            entry["mean"] = {s: float(np.mean([g[s] for g in seeds])) for s in SPACES}
            entry["vs_init"] = {s: float(np.mean(v)) for s, v in init_acc[(model, method)].items()}
    return dict(out)


def generalises(entry: dict, unseen_spaces: list[str], searched: list[str]) -> bool:
    """The issue's goal: positive unseen gain over EMA* on every training seed, and mean unseen gain ≥ half the
    mean searched-space gain."""
    if not unseen_spaces:
        return False
    seeds_ok = all(g[s] > 0 for g in entry["per_seed"].values() for s in unseen_spaces)
    seen_gain = float(np.mean([entry["mean"][s] for s in searched]))
    unseen_gain = float(np.mean([entry["mean"][s] for s in unseen_spaces]))
    return seeds_ok and unseen_gain >= 0.5 * seen_gain


def matches(curve: list[dict], target: float, space: str = "digits") -> dict | None:
    """The first budget point whose mean held-out FD in ``space`` is at or below ``target``."""
    return next((row for row in curve if row[f"{space}_mean"] <= target), None)


def best_method(curves_: dict[str, dict[str, list[dict]]], baseline: str = "alg1") -> str:
    """The non-baseline method with the lowest mean (over models) search-noise FD_digits at its maximum budget,
    relative to the baseline's (held-out scores play no part)."""
    ratios: dict[str, list[float]] = defaultdict(list)
    for methods in curves_.values():
        if baseline not in methods:
            continue
        ref = methods[baseline][-1]["search_digits"]
        for name, curve in methods.items():
            if name != baseline and curve[-1]["search_digits"] is not None:  # post-hoc remedies have none
                ratios[name].append(curve[-1]["search_digits"] / ref)
    if not ratios:
        return baseline
    return min(ratios, key=lambda n: (float(np.mean(ratios[n])), n))


def efficiency(curves_: dict, model: str, method: str, baseline: str = "alg1") -> dict[str, Any]:
    """Evaluations and samples ``method`` needs to reach the baseline's held-out FD_digits at its maximum budget."""
    base = curves_[model][baseline][-1]
    hit = matches(curves_[model][method], base["digits_mean"])
    if hit is None:
        return {"evals": None, "samples": None, "efficiency": None, "target": base["digits_mean"]}
    return {"evals": hit["evals"], "samples": hit["samples"], "efficiency": base["evals"] / hit["evals"],
            "target": base["digits_mean"]}


def summary_line(curves_: dict, gains_: dict, specs: dict[str, dict], baseline: str = "alg1") -> dict[str, Any]:
    """The benchmark's final JSON figures (names from issue 13)."""
    models = sorted(curves_)
    best = best_method(curves_, baseline)
    eff = {m: efficiency(curves_, m, best, baseline) for m in models if best in curves_[m]}
    return {
        "max_evals": {m: curves_[m][baseline][-1]["evals"] for m in models},
        "alg1_heldout_fd": {m: round(curves_[m][baseline][-1]["digits_mean"], 4) for m in models},
        "best_method": best,
        "evals_to_match_alg1": {m: e["evals"] for m, e in eff.items()},
        "samples_to_match_alg1": {m: e["samples"] for m, e in eff.items()},
        "sample_efficiency": {m: e["efficiency"] for m, e in eff.items()},
        "unseen_gain": {name: {m: {s: round(gains_[m][name]["mean"][s], 4) for s in unseen(spec)}
                               for m in models if name in gains_.get(m, {})}
                        for name, spec in specs.items()},
    }


def objective_decision(gains_: dict[str, dict[str, dict]], specs: dict[str, dict],
                       default: str = DEFAULT_OBJECTIVE) -> dict[str, Any]:
    """The default search objective, by a rule fixed before its results: an objective *qualifies* when its Alg. 1
    method :func:`generalises` on every model; the default stays if it qualifies; otherwise the qualifying one with
    the largest mean held-out FD3 gain over EMA* (FD3: unseen by every candidate) wins; if none qualifies, the one
    with the largest mean FD3 gain. ``gains_`` must come from decision seeds on check noise (:func:`gains`)."""
    models = sorted(gains_)
    present = {o: m for o, m in OBJECTIVE_METHODS.items() if all(m in gains_[md] for md in models)}
    if default not in present:
        raise ValueError(f"the objective decision needs the default's method {OBJECTIVE_METHODS[default]!r} on "
                         f"every model; present: {sorted(present.values())}")
    ok = {o: all(generalises(gains_[md][m], unseen(specs[m]), list(specs[m]["objective"])) for md in models)
          for o, m in present.items()}
    fd3 = {o: float(np.mean([gains_[md][m]["mean"]["digits3"] for md in models])) for o, m in present.items()}
    qualified = [o for o in present if ok[o]]
    if ok[default]:
        chosen, why = default, "the default qualifies"
    elif qualified:
        chosen, why = max(qualified, key=lambda o: fd3[o]), "the default does not qualify; the best qualifying FD3 gain"
    else:
        chosen, why = max(present, key=lambda o: fd3[o]), "no objective qualifies; the largest FD3 gain"
    return {"chosen": chosen, "reason": why, "qualifies": ok, "mean_fd3_gain": {o: round(v, 4) for o, v in fd3.items()},
            "methods": present}
