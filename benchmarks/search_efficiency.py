"""Benchmark: LCSC search methods at equal budgets, judged on held-out noise in feature spaces they never saw.

Trains the demo's DM and CM (improved CT) for each training seed once (or reuses them from --cache), then for every
method (see lcsc.analysis.search_efficiency.METHODS) × search seed searches the window ending at the end of training
on the demo's search noise, up to DM 200 / CM 400 evaluations. The best-so-far individual at each budget is scored on
check noise (lcsc.protocol: decision seeds only, never the demo's report noise) in FD_digits, FD_digits2 and
FD_digits3; EMA* (the demo's: online and post-hoc EMAs raced on search noise) is scored the same way. It decides the
default search objective (search_summary.objective_decision). Writes search_efficiency.{md,json,png} to --out; the
last line printed is one JSON object of the figures (max_evals, alg1_heldout_fd, best_method, evals_to_match_alg1,
samples_to_match_alg1, sample_efficiency, unseen_gain, objective_decision).

Run:  python benchmarks/search_efficiency.py --out docs/search       # every method: ~70 min on 2 CPU cores
      python benchmarks/search_efficiency.py --out docs/search --cache runs --methods alg1,alg1-mean12,alg1-max12 \
          --search-seeds 0,1 --dm-search-seeds 0                      # the objective decision (docs/search)
      python benchmarks/search_efficiency.py --quick                  # ≤ 3 min smoke version
Runs are resumable: finished jobs in --work are reused, unfinished searches resume from their journals.

Gradient LCSC (issue 33): --gradient runs the demo's anchored Alg. 1 (with its guard) and the gradient search
(lcsc.search.gradient, each setting of lcsc.analysis.gradient_efficiency.GRAD_SETTINGS) at the end of training of
the demo runs in --cache (demo-seedN/{dm,cm-ct}), scores them and EMA* on check noise, and chooses the setting by
the rule fixed in that module; --gradient-report 3,4,5 then runs the chosen setting on report seeds (report noise,
FD4 included; nothing is chosen there). Writes gradient.{md,json} (gradient-report.{md,json}) to --out.

      python benchmarks/search_efficiency.py --gradient --cache runs --out docs/search          # ~25 min, 2 cores
      python benchmarks/search_efficiency.py --gradient-report 3,4,5 --cache runs --out docs/search
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lcsc import protocol
from lcsc.analysis.search_efficiency import METHODS, SPACES, ema_star_job, posthoc_job, run_job, scorer_for
from lcsc.analysis.search_summary import (
    DEFAULT_OBJECTIVE,
    OBJECTIVE_METHODS,
    curves,
    gains,
    generalises,
    objective_decision,
    summary_line,
    unseen,
)
from lcsc.atomic import write_json, write_text
from lcsc.errors import LCSCError
from lcsc.experiment.config import DemoConfig
from lcsc.report.plots import save_figure
from lcsc.report.tables import markdown_table

MODELS = ("dm", "cm-ct")
_SCORERS: dict = {}
# --quick: the smoke test's sizes, below DemoConfig.quick() (the sizes of scripts/gpu_check.py's tiny demo, fewer
# samples): it checks the plumbing and the summary's shape, not the figures
QUICK_DEMO = {"iterations": 160, "window": 40, "channels": 8, "search_samples": 100, "grid_samples": 50,
              "eval_samples": 100}


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/search-efficiency"))
    p.add_argument("--work", type=Path, default=None, help="job folder (default OUT/jobs)")
    p.add_argument("--cache", type=Path, default=Path("runs/cache"), help="trained demo runs, by seed")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", default=None, help="training seeds (default 0,1,2)")
    p.add_argument("--search-seeds", default=None, help="search seeds (default 0,1,2)")
    p.add_argument("--dm-search-seeds", default=None, help="search seeds for the DM (default: --search-seeds)")
    p.add_argument("--methods", default=None, help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--dm-samples", type=int, default=None, help="DM search samples per evaluation (default 500)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--report-only", action="store_true", help="summarise the finished jobs in --work, run nothing")
    p.add_argument("--gradient", action="store_true", help="gradient LCSC vs the demo's Alg. 1 on decision seeds")
    p.add_argument("--gradient-report", default=None, metavar="SEEDS",
                   help="the chosen gradient setting on these report seeds (report noise)")
    p.add_argument("--settings", default=None, help="gradient settings (default: all of GRAD_SETTINGS)")
    p.add_argument("--baselines-only", action="store_true", help="--gradient-report: EMA* and Alg. 1 rows only")
    return p.parse_args()


def _ints(text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",")) if text else default


def _plan(a: argparse.Namespace) -> dict:
    quick = a.quick
    demo = DemoConfig.quick(**QUICK_DEMO) if quick else DemoConfig()
    seeds = _ints(a.seeds, (0,) if quick else (0, 1, 2))
    search_seeds = _ints(a.search_seeds, (0,) if quick else (0, 1, 2))
    methods = a.methods.split(",") if a.methods else list(METHODS)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise LCSCError(f"--methods: unknown {bad}; choose from {', '.join(METHODS)}")
    for s in seeds:  # a benchmark that decides reads decision seeds only
        protocol.check_training_seed(s, "benchmarks/search_efficiency.py")
    return {
        "quick": quick, "seeds": seeds, "methods": methods, "eval_seeds": 3, "held_out_noise": "decision",
        "search_seeds": {"dm": _ints(a.dm_search_seeds, search_seeds), "cm-ct": search_seeds},
        "budgets": {"dm": 16, "cm-ct": 24} if quick else {"dm": 200, "cm-ct": 400},
        "dm_samples": a.dm_samples or (demo.search_samples if quick else 500),
        "grid": [8, 12, 16, 24] if quick else [25, 50, 100, 150, 200, 300, 400],
        "demo": asdict(demo),
    }  # fmt: skip


def _demo(plan: dict, seed: int, model: str | None = None) -> DemoConfig:
    """The demo's config for ``seed``; for the DM, with the benchmark's DM search sample count."""
    extra = {"search_samples": plan["dm_samples"]} if model == "dm" else {}
    return DemoConfig(**(plan["demo"] | {"seed": seed} | extra))


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _scorer(demo: DemoConfig):
    """The demo's Scorer on check noise, one per (seed, config) per process."""
    key = repr(demo)
    if key not in _SCORERS:
        _SCORERS[key] = scorer_for(demo)
    return _SCORERS[key]


def _train(plan: dict, cache: Path, seed: int, model: str) -> str:
    from lcsc.data import load_digits_data
    from lcsc.experiment.stages import train_model

    train_model(model, _demo(plan, seed), cache / f"demo-seed{seed}", load_digits_data(), progress=False)
    return f"{seed}/{model}"


def _job(plan: dict, cache: Path, work: Path, key: tuple) -> dict:
    path = work / ("-".join(map(str, key)) + ".json")
    if path.is_file():
        return json.loads(path.read_text())
    kind, seed, model = key[:3]
    demo = _demo(plan, seed, model)
    if kind == "ema":  # the demo's EMA* exactly: the demo's config, its search sample count included
        demo = _demo(plan, seed)
        res = ema_star_job(_scorer(demo), cache, demo, seed, model, plan["eval_seeds"])
    elif kind == "posthoc":
        res = posthoc_job(_scorer(demo), cache, work, demo, seed, model, METHODS[key[3]], key[4], plan["eval_seeds"])
    else:
        method, search_seed = METHODS[key[3]], key[4]
        res = run_job(_scorer(demo), cache, work, demo, seed, model, method, search_seed, plan["budgets"][model],
                      plan["grid"], plan["eval_seeds"])
    write_json(path, res)
    return res


def _finished(work: Path, plan: dict) -> tuple[list[dict], list[dict]]:
    """The job results already in ``work`` (for --report-only)."""
    found: dict[str, list[dict]] = {"ema": [], "search": [], "posthoc": []}
    for path in sorted(work.glob("*.json")):
        found[path.name.split("-")[0]].append(json.loads(path.read_text()))
    jobs = [j for j in found["search"] if j["method"] in plan["methods"]]
    return jobs + _pseudo_jobs(jobs, found["posthoc"], plan), found["ema"]


def _run_all(plan: dict, cache: Path, work: Path, workers: int) -> tuple[list[dict], list[dict]]:
    from tqdm.auto import tqdm

    work.mkdir(parents=True, exist_ok=True)
    _scorer(_demo(plan, plan["seeds"][0]))  # train / cache the feature networks once, before the workers read them
    with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
        trains = [pool.submit(_train, plan, cache, s, m) for s in plan["seeds"] for m in MODELS]
        for f in tqdm(trains, desc="train (or reuse)", unit="run"):
            f.result()
        keys = [("ema", s, m) for s in plan["seeds"] for m in MODELS]
        keys += [("search", s, m, name, ss) for s in plan["seeds"] for m in MODELS for name in plan["methods"]
                 for ss in plan["search_seeds"][m]]
        futures = {pool.submit(_job, plan, cache, work, k): k for k in keys}
        results = {}
        for f in tqdm(futures, desc="searches", unit="job"):
            results[futures[f]] = f.result()
        post = [("posthoc", *k[1:]) for k in keys if k[0] == "search" and len(METHODS[k[3]].objective) == 1]
        futures = {pool.submit(_job, plan, cache, work, k): k for k in post}
        for f in tqdm(futures, desc="shrink / select-by-digits2", unit="job"):
            results[futures[f]] = f.result()
    ema = [r for k, r in results.items() if k[0] == "ema"]
    jobs = [r for k, r in results.items() if k[0] == "search"]
    return jobs + _pseudo_jobs(jobs, [r for k, r in results.items() if k[0] == "posthoc"], plan), ema


def _pseudo_jobs(jobs: list[dict], posthoc: list[dict], plan: dict) -> list[dict]:
    """The post-hoc remedies as extra methods: the search's initial point, then the remedy's held-out scores at
    the search's full budget (search-noise scores unknown: never used to pick the best method)."""
    by_key = {(j["train_seed"], j["model"], j["method"], j["search_seed"]): j for j in jobs}
    out = []
    for p in posthoc:
        job = by_key.get((p["train_seed"], p["model"], p["method"], p["search_seed"]))
        if job is None:
            continue
        for variant, objective in (("shrink", ["digits"]), ("select2", ["digits", "digits2"]),
                                   ("revalidate", ["digits"])):
            if variant not in p:
                continue
            first, last = job["points"][0], dict(job["points"][-1])
            n = plan["dm_samples"] if job["model"] == "dm" else plan["demo"]["search_samples"]
            extra = p[variant]["top"] * n if variant != "shrink" else 0
            last.update(held_out=p[variant]["held_out"], samples=last["samples"] + extra, search={"digits": None})
            out.append({**job, "method": f"{job['method']}+{variant}", "points": [first, last],
                        "method_spec": {**job["method_spec"], "objective": objective}})
    return out


def _plot(cur: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(cur), 3, figsize=(16, 4.2 * len(cur)), squeeze=False)
    for row, (model, methods) in zip(axes, sorted(cur.items())):
        for name, curve in methods.items():
            for ax, x_key, space in ((row[0], "evals", "digits"), (row[1], "samples", "digits"),
                                     (row[2], "evals", "digits3")):
                x = np.array([r[x_key] for r in curve])
                y, e = np.array([r[f"{space}_mean"] for r in curve]), np.array([r[f"{space}_std"] for r in curve])
                ax.plot(x, y, marker="o", ms=3, label=name)
                ax.fill_between(x, y - e, y + e, alpha=0.12)
        for ax, x_label, space in ((row[0], "evaluations", "FD_digits"), (row[1], "generated samples", "FD_digits"),
                                   (row[2], "evaluations", "FD_digits3 (never searched)")):
            ax.set(xscale="log", xlabel=x_label, ylabel=f"held-out {space}", title=f"{model}: {space}")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
    save_figure(fig, path)


def _tables(cur: dict, gain: dict, ema: list[dict], specs: dict) -> str:
    parts = []
    for model, methods in sorted(cur.items()):
        rows = []
        for name, curve in methods.items():
            g, spec = gain.get(model, {}).get(name), specs[name]
            final = curve[-1]
            rows.append({"method": name, **final, "gain": g, "ok": g is not None and
                         generalises(g, unseen(spec), list(spec["objective"])),
                         "unseen": ",".join(unseen(spec))})
        cols = [("method", lambda r: r["method"]), ("evals", lambda r: str(r["evals"])),
                ("samples", lambda r: f"{r['samples']:.0f}"),
                ("search FD_digits", lambda r: "—" if r["search_digits"] is None else f"{r['search_digits']:.3f}")]
        cols += [(f"held-out {s}", lambda r, s=s: f"{r[f'{s}_mean']:.3f} ± {r[f'{s}_std']:.3f}") for s in SPACES]
        cols += [(f"gain vs EMA* {s}", lambda r, s=s: f"{100 * r['gain']['mean'][s]:+.1f} %" if r["gain"] else "—")
                 for s in SPACES]
        cols += [("unseen", lambda r: r["unseen"]), ("generalises", lambda r: "yes" if r["ok"] else "no")]
        stars = [e for e in ema if e["model"] == model]
        star = {s: np.mean([e["held_out"][s] for e in stars]) for s in SPACES}
        parts.append(f"### {model} (EMA* held-out: " + ", ".join(f"{s} {v:.3f}" for s, v in star.items()) +
                     ")\n\n" + markdown_table(rows, cols))
        parts.append(_curve_table(methods))
    return "\n\n".join(parts)


def _curve_table(methods: dict) -> str:
    budgets = sorted({r["evals"] for c in methods.values() for r in c})
    rows = [{"method": n, **{b: next((r for r in c if r["evals"] == b), None) for b in budgets}}
            for n, c in methods.items()]
    cols = [("held-out FD_digits at evals", lambda r: r["method"])]
    cols += [(str(b), lambda r, b=b: f"{r[b]['digits_mean']:.3f}" if r[b] else "—") for b in budgets]
    return markdown_table(rows, cols)


def _intro(plan: dict, line: dict) -> str:
    """What was run, on which data, and the objective decision when it was made."""
    text = (f"Decision seeds {', '.join(map(str, plan['seeds']))} (lcsc.protocol); held-out scores on *check* noise "
            f"({plan['eval_seeds']} seeds from offset {protocol.DECISION_NOISE_OFFSET}, never the demo's report "
            "noise); spaces FD_digits, FD2, FD3 (the report-only FD4 is never built). EMA* is the demo's: online and "
            "post-hoc EMAs raced on the search noise with the demo's default objective.\n\n")
    d = line.get("objective_decision")
    if d:
        text += ("**Default objective** (rule fixed before the results, `search_summary.objective_decision`: an "
                 "objective qualifies when Alg. 1 with it generalises on every model; the default stays if it "
                 "qualifies, else the best qualifying FD3 gain, else the largest FD3 gain): qualifies "
                 + ", ".join(f"`{o}` {'yes' if v else 'no'}" for o, v in d["qualifies"].items())
                 + "; mean FD3 gain over EMA* " + ", ".join(f"`{o}` {100 * v:+.1f} %" for o, v in
                                                         d["mean_fd3_gain"].items())
                 + f". **Chosen: `{d['chosen']}`** ({d['reason']}).\n\n")
    return text


def _grad_cells(a: argparse.Namespace, seeds: tuple[int, ...], noise: str, settings: list[str]) -> list[dict]:
    """Every (seed, model) cell, two processes at a time (one thread each), resumable."""
    from lcsc.analysis.gradient_efficiency import cell, with_noise
    from lcsc.data import load_digits_data
    from lcsc.experiment.scoring import Scorer

    work = a.work or a.out / ("gradient-jobs" if noise == "decision" else "gradient-report-jobs")
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for seed in seeds:
        cfg = with_noise(DemoConfig(seed=seed), noise)
        scorer = Scorer(cfg, load_digits_data())
        for model in MODELS:
            out.append(cell(a.cache, work / f"seed{seed}", cfg, scorer, model, settings))
            print(f"[gradient] seed {seed} {model}: " + ", ".join(
                f"{k} {v['scores']['digits']:.1f}" for k, v in out[-1]["rows"].items()), flush=True)
    return out


def _alg1_long(cells: list[dict]) -> tuple[dict, dict]:
    """Alg. 1's long-budget held-out FD_digits (docs/search/search_efficiency.json, alg1-max12: the demo's objective,
    decision seeds, check noise) and its cost: its samples, and core-seconds at this run's Alg. 1 CPU per sample."""
    ref = json.loads((Path(__file__).parents[1] / "docs/search/search_efficiency.json").read_text())
    target, cost = {}, {}
    for model in MODELS:
        last = ref["curves"][model]["alg1-max12"][-1]
        mine = [c["rows"]["alg1"] for c in cells if c["model"] == model]
        per_sample = float(np.mean([r["cpu_s"] / r["samples"] for r in mine]))
        target[model] = round(last["digits_mean"], 3)
        cost[model] = {"evals": last["evals"], "samples": last["samples"], "cpu_s": per_sample * last["samples"]}
    return target, cost


def _grad_intro(report: bool, settings: list[str]) -> str:
    from lcsc.analysis.gradient_efficiency import DECISION_RULE, GRAD_SETTINGS

    where = ("Report seeds, scored on report noise (3 seeds × 800 samples) in FD_digits, FD2, FD3 and the report-only "
             "FD4; the setting was chosen on the decision seeds (gradient.md) and nothing here chooses anything."
             if report else "Decision seeds, scored on check noise (3 seeds × 800 samples) in the decision spaces. "
             f"Rule (fixed in lcsc.analysis.gradient_efficiency): {DECISION_RULE}.")
    specs = "; ".join(f"`{s}` {GRAD_SETTINGS[s]['grad']}" + (f" groups {GRAD_SETTINGS[s]['groups']}"
                                                             if GRAD_SETTINGS[s]["groups"] else "") for s in settings)
    return (f"{where} Every search is the demo's at the end of training (step 3200): the anchored stack (the window "
            "of 100 checkpoints, EMA* at its end, the online EMAs at its start), the `max:fd-digits,fd-digits2` "
            "objective on the search noise, DM at NFE 5, CM at 1 step. `alg1` is the demo's Algorithm 1 with its "
            "validation guard (DM 60, CM 90 evaluations of 1,000 samples); `grad-NAME` the gradient search's export, "
            "`grad-NAME@t` its last iterate after t steps. Samples count every image a search drew (its initial "
            f"population, steps, guard); core-s is the search's process CPU time. Settings: {specs}.\n\n")


def gradient_main(a: argparse.Namespace) -> None:
    from lcsc.analysis.gradient_efficiency import GRAD_SETTINGS, TRAJECTORY, decide_setting
    from lcsc.analysis.gradient_report import cell_table, counts, efficiency, plot, summary

    t0, report = time.time(), a.gradient_report is not None
    seeds = _ints(a.gradient_report or a.seeds, (0, 1, 2))
    for s in seeds:
        if not report:
            protocol.check_training_seed(s, "benchmarks/search_efficiency.py --gradient")
        elif protocol.seed_role(s) != "report":
            raise LCSCError(f"--gradient-report {s}: not a report seed ({', '.join(map(str, protocol.REPORT_SEEDS))})")
    if report and a.baselines_only:  # EMA* and Alg. 1 rows only (they do not depend on the decision)
        settings = []
    elif report:
        decided = json.loads((a.out / "gradient.json").read_text())["summary"]["decision"]["chosen"]
        settings = [decided]
    else:
        settings = a.settings.split(",") if a.settings else list(GRAD_SETTINGS)
    cells = _grad_cells(a, seeds, "report" if report else "decision", settings)
    line = {"seeds": list(seeds), "noise": "report" if report else "decision", "settings": settings}
    if not settings:
        print(json.dumps(line))
        return
    line["counts"] = {s: counts(cells, f"grad-{s}") for s in settings} | {"alg1": counts(cells, "alg1")}
    line["cost"] = {s: summary(cells, f"grad-{s}") for s in settings}
    if not report:
        line["decision"] = decide_setting(cells, settings)
        target, cost = _alg1_long(cells)
        line["sample_efficiency"] = {s: efficiency(cells, s, target, cost, TRAJECTORY) for s in settings}
        line["alg1_long"] = {"fd_digits": target, "cost": cost}
    name = "gradient-report" if report else "gradient"
    line["wall_s"] = round(time.time() - t0, 1)
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / f"{name}.json", {"summary": line, "cells": cells})
    curves = json.loads((Path(__file__).parents[1] / "docs/search/search_efficiency.json").read_text())["curves"]
    plot(cells, settings, None if report else {m: curves[m]["alg1-max12"] for m in MODELS}, a.out / f"{name}.png")
    write_text(a.out / f"{name}.md", f"# Gradient LCSC ({'report seeds, report noise' if report else 'decision seeds, check noise'})\n\n"
               + _grad_intro(report, settings) + cell_table(cells) + "\n\n```json\n" + json.dumps(line, indent=1)
               + "\n```\n")
    print(json.dumps(line))


def main() -> None:
    a = _args()
    if a.gradient or a.gradient_report:
        gradient_main(a)
        return
    plan = _plan(a)
    t0 = time.time()
    work = a.work or a.out / "jobs"
    if a.report_only:
        jobs, ema = _finished(work, plan)
    else:
        jobs, ema = _run_all(plan, a.cache, work, max(1, min(a.workers, os.cpu_count() or 1)))
    cur, gain = curves(jobs), gains(jobs, ema)
    specs = {j["method"]: j["method_spec"] for j in jobs}
    line = summary_line(cur, gain, specs)
    if all(m in specs for m in OBJECTIVE_METHODS.values()):
        line["objective_decision"] = objective_decision(gain, specs, DEFAULT_OBJECTIVE)
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / "search_efficiency.json", {"plan": plan, "summary": line, "curves": cur, "gains": gain,
                                                 "ema_star": ema, "wall_s": round(time.time() - t0, 1)})
    _plot(cur, a.out / "search_efficiency.png")
    write_text(a.out / "search_efficiency.md", "# Search efficiency (issues 13, 25)\n\n" + _intro(plan, line)
               + _tables(cur, gain, ema, specs)
               + "\n\n```json\n" + json.dumps(line, indent=1) + "\n```\n")
    print(json.dumps(line))


if __name__ == "__main__":
    try:
        main()
    except LCSCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
