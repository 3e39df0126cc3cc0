# The LCSC paper's headlines for CD / CT (Liu et al. 2024, Tab. 7 speed-ups, Sec. 5.2 NFE, Tab. 6 costs), from rows.
"""``analyse``: from :func:`~lcsc.distill.run.run_distillation`'s raw results to the report's figures.

A speed-up is where the *reference* run's EMA* curve first reaches an LCSC point's held-out FD (linear between the
curve's points), divided by the LCSC point's iterations, or by its images seen (iterations × batch) for the images
figure; a space where the curve never gets there gives the lower bound "> end". A claim needs every space.
"""

from __future__ import annotations

import math
from typing import Any

from lcsc.distill.config import DistillConfig
from lcsc.distill.costs import break_even_iterations, paper_cd_cost, run_cost, with_search_speedup
from lcsc.experiment.headlines import crossing, nfe_match
from lcsc.spaces import spaces_in

__all__ = ["analyse", "curve", "speedup_entry", "convergence", "CONVERGED_FALL"]

CONVERGED_FALL = 0.05  # converged: EMA*'s held-out FD falls by less than 5 % over the last quarter, in every space


def _rows(raw: dict, run: str, method: str, nfe: int | None = None) -> list[dict]:
    main = {r["iteration"]: r for r in raw["rows"] if r["run"] == run and r["method"] == method and
            (nfe is None or r["nfe"] == nfe)}
    return [main[p] for p in sorted(main)]


def _nfe(cfg: DistillConfig, run: str) -> int:
    return cfg.teacher_nfe if run == "teacher" else 1


def curve(raw: dict, cfg: DistillConfig, run: str, method: str = "EMA*") -> list[dict]:
    """A run's held-out rows of ``method`` at its curve points, at the run's own NFE, in iteration order."""
    return _rows(raw, run, method, _nfe(cfg, run))


def convergence(rows: list[dict]) -> dict[str, Any]:
    """The fall of held-out FD from 3/4 of the run to its end, per space; converged if below 5 % in every one."""
    by_it = {r["iteration"]: r for r in rows}
    end = max(by_it)
    q = by_it[min(by_it, key=lambda p: abs(p - 3 * end / 4))]
    keys = spaces_in(q, by_it[end])
    fall = {k: (q[k] - by_it[end][k]) / q[k] for k in keys}
    return {"from": q["iteration"], "to": end, "fall": fall, "converged": all(v < CONVERGED_FALL for v in fall.values())}


def speedup_entry(ref_points: list[int], ref_curve: list[dict], lcsc: dict, iteration: int, batch: int,
                  ref_batch: int, search_core_s: float, ref_core_s_per_image: float) -> dict[str, Any]:
    """One LCSC point against the reference EMA* curve, per space: the crossing, the speed-up in iterations and in
    images seen (= the iteration speed-up × ``ref_batch / batch``), and in images with the search counted."""
    end, keys = float(ref_points[-1]), spaces_in(lcsc, *ref_curve)
    per: dict[str, dict[str, Any]] = {}
    for k in keys:
        c = crossing([float(p) for p in ref_points], [float(r[k]) for r in ref_curve], float(lcsc[k]))
        x = end if c.x is None else c.x
        per[k] = {"crossing": c.x, "label": c.label(end), "never": c.x is None, "at_start": c.at_start,
                  "iters": x / iteration, "images": x * ref_batch / (iteration * batch),
                  "with_search": with_search_speedup(x * ref_batch, iteration * batch, search_core_s,
                                                     ref_core_s_per_image)}
    worst = min(keys, key=lambda k: per[k]["iters"])
    return {"iteration": iteration, "batch": batch, "by_space": per,
            "speedup_iters": per[worst]["iters"], "speedup_images": min(v["images"] for v in per.values()),
            "speedup_with_search": min(v["with_search"] for v in per.values()),
            "lower_bound": per[worst]["never"], "claimed": all(v["iters"] > 1 for v in per.values()),
            "claimed_images": all(v["images"] > 1 for v in per.values())}


def _search_core_s(raw: dict, run: str, point: int) -> float:
    rec = next(s for s in raw["searches"][run] if s["point"] == point)
    return rec["seconds"] * raw["threads"]


def speedups(raw: dict, cfg: DistillConfig) -> dict[str, list[dict]]:
    """Every LCSC point of every CM run against its reference run's EMA* curve."""
    specs, out = cfg.runs(), {}
    for name, spec in specs.items():
        if name == "teacher":
            continue
        ref = specs[cfg.reference(name)]
        ref_curve = curve(raw, cfg, ref.name)
        ref_core_s_per_image = raw["train_s"][ref.name] / ref.images  # one thread per training lane
        out[name] = [speedup_entry([r["iteration"] for r in ref_curve], ref_curve, row, row["iteration"],
                                   spec.batch_size, ref.batch_size, _search_core_s(raw, name, row["iteration"]),
                                   ref_core_s_per_image) | {"lcsc": _fds(row)}
                     for row in curve(raw, cfg, name, "LCSC")]
    return out


def _fds(row: dict) -> dict[str, float]:
    return {k: row[k] for k in spaces_in(row)}


def _at(raw: dict, run: str, method: str, iteration: int, nfe: int) -> dict | None:
    return next((r for r in raw["rows"] if (r["run"], r["method"], r["iteration"], r["nfe"]) ==
                 (run, method, iteration, nfe)), None)


def nfe_results(raw: dict, cfg: DistillConfig) -> dict[str, Any]:
    """CD at the end: LCSC at 1 step vs EMA* at 1 and 2 steps; the teacher: LCSC at NFE 9 vs EMA* at every NFE."""
    n, t = cfg.iterations, cfg.teacher_iterations
    lc, e1, e2 = _at(raw, "cd", "LCSC", n, 1), _at(raw, "cd", "EMA*", n, 1), _at(raw, "cd", "EMA*", n, 2)
    keys = spaces_in(lc, e1, e2)
    cd = {"lcsc_1": _fds(lc), "ema_star_1": _fds(e1), "ema_star_2": _fds(e2),
          "lcsc_1_le_ema_2": {k: lc[k] <= e2[k] for k in keys}}
    cd["holds"] = all(cd["lcsc_1_le_ema_2"].values())
    ema = [_at(raw, "teacher", "EMA*", t, m) for m in cfg.dm_nfes]
    lcsc = _at(raw, "teacher", "LCSC", t, cfg.teacher_nfe)
    dm = nfe_match(list(cfg.dm_nfes), ema, lcsc, cfg.teacher_nfe)
    ema15 = _at(raw, "teacher", "EMA*", t, 15)
    if ema15 is not None:
        dm["lcsc_le_ema_15"] = {k: lcsc[k] <= ema15[k] for k in spaces_in(lcsc, ema15)}
        dm["holds_vs_15"] = all(dm["lcsc_le_ema_15"].values())
    dm["curve"] = {m: _fds(r) for m, r in zip(cfg.dm_nfes, ema)}
    dm["lcsc"] = _fds(lcsc)
    return {"cd": cd, "dm": dm}


def costs(raw: dict, cfg: DistillConfig) -> dict[str, Any]:
    """Training and search compute per run, the paper's setting in the same units, and the training length at which
    one of our LCSC searches falls below 10 % of training."""
    out: dict[str, Any] = {"runs": {}}
    for name, spec in cfg.runs().items():  # a search record's "samples" counts every sample it drew
        nfe = _nfe(cfg, name)
        searches = [{"evaluations": s["evaluations"], "samples": s["samples"] / max(1, s["evaluations"]), "nfe": nfe,
                     "core_s": s["seconds"] * raw["threads"]} for s in raw["searches"][name]]
        cost = run_cost(spec.model, spec.iterations, spec.batch_size, raw["train_s"][name], searches)
        per_search = cost.search_core_s / max(1, len(searches))
        per_iter = cost.train_core_s / spec.iterations
        out["runs"][name] = cost.to_dict() | {
            "searches": len(searches), "core_s_per_search": per_search,
            "passes_per_search": cost.search_passes / max(1, len(searches)),
            "one_search_fraction_passes": cost.search_passes / max(1, len(searches)) / cost.train_passes,
            "one_search_fraction_seconds": per_search / cost.train_core_s,
            "break_even_iterations_10pct": break_even_iterations(per_search, per_iter)}
    paper = paper_cd_cost()
    out["paper_cd"] = {"train_passes": paper.train_passes, "search_passes": paper.search_passes,
                       "search_fraction_passes": paper.search_fraction_passes, "paper_hours": "6.45 h vs 640–818 h"}
    return out


def analyse(raw: dict, cfg: DistillConfig) -> dict[str, Any]:
    """The report: convergence, speed-ups, NFE, costs, and the headline figures under the issue's names."""
    conv = {name: convergence(curve(raw, cfg, name)) for name in cfg.runs()}
    sp, nfe, cost = speedups(raw, cfg), nfe_results(raw, cfg), costs(raw, cfg)
    end = {name: entries[-1] for name, entries in sp.items()}
    ref_search = cost["runs"]["cd"]
    return {
        "speedup_iters": {"cd_short": end["cd-short"]["speedup_iters"], "ct_short": end["ct-short"]["speedup_iters"],
                          "claimed": {n: end[n]["claimed"] for n in ("cd-short", "ct-short")}},
        "speedup_images": {"cd_small": end["cd-small"]["speedup_images"], "cd_short": end["cd-short"]["speedup_images"],
                           "claimed": {n: end[n]["claimed_images"] for n in ("cd-small", "cd-short")}},
        "speedup_with_search": {n.replace("-", "_"): end[n]["speedup_with_search"] for n in end},
        "cd_lcsc_1nfe_vs_ema_2nfe": nfe["cd"],
        "dm_nfe_match": nfe["dm"],
        "converged": {n: c["converged"] for n, c in conv.items()},
        "search_cost_fraction": {"ours_cd_passes": ref_search["search_fraction_passes"],
                                 "ours_cd_seconds": ref_search["search_fraction_seconds"],
                                 "ours_cd_one_search_passes": ref_search["one_search_fraction_passes"],
                                 "ours_cd_one_search_seconds": ref_search["one_search_fraction_seconds"],
                                 "paper_cd_passes": cost["paper_cd"]["search_fraction_passes"],
                                 "break_even_iterations_10pct": ref_search["break_even_iterations_10pct"]},
        "convergence": conv, "speedups": sp, "nfe": nfe, "costs": cost,
    }


def finite(x: Any) -> Any:
    """JSON-safe: NaN / inf become None, recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x
