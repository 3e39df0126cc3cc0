"""``lcsc analyze ablation-search RUN_WINDOW -o DIR``: LCSC search hyper-parameters at equal budgets (Tabs. 4, 9, 14)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lcsc.cli.common import add_stack_options, open_stack, write_resolved_config
from lcsc.errors import ConfigError

__all__ = ["register", "run"]

WHAT = "ablation-search"
# default size: ~4.5 min on the demo DM window (K=100, NFE 5) at the unit cost measured on the contended 2-core
# machine (6.9 ms/sample, one thread): 8 settings × 3 seeds × 22 evaluations (6 EMA initial individuals + 2
# generations of 8, so parent pools of 3, 10 and 16 differ), 80 samples/eval, held-out FD on 200 samples
# measured on the demo's DM window (K=100) on 2 cores: ≈ 0.5 ms per sample, so this plan takes ≈ 2.5 min
DEFAULTS = {"evals": 40, "samples": 250, "samples_values": "125,500", "sigma_values": "0.5,2",
            "parents_values": "3,16", "held_out_samples": 500}
QUICK = {"evals": 8, "samples": 32, "samples_values": "16", "sigma_values": "2", "parents_values": "2",
         "held_out_samples": 32}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(WHAT, help="search hyper-parameters (samples, σ, parents, convex) at equal budgets")
    p.add_argument("checkpoints", type=Path, nargs="+", metavar="RUN_WINDOW", help="a window's checkpoint folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--factors", default=",".join(("samples", "sigma", "parents", "convex")),
                   help="factors to vary one at a time: samples, sigma, parents, convex")
    p.add_argument("--evals", type=int, default=None, help=f"evaluations per search (default {DEFAULTS['evals']})")
    p.add_argument("--search-seeds", type=int, default=3, help="search seeds per setting (default 3)")
    p.add_argument("--samples", type=int, default=None, help=f"default samples/eval (default {DEFAULTS['samples']})")
    p.add_argument("--samples-values", default=None, help=f"(default {DEFAULTS['samples_values']})")
    p.add_argument("--sigma-values", default=None, help=f"multiples of σ=1/K (default {DEFAULTS['sigma_values']})")
    p.add_argument("--parents-values", default=None, help=f"parent pool sizes (default {DEFAULTS['parents_values']})")
    p.add_argument("--parents", type=int, default=10, help="the default parent pool M")
    p.add_argument("--held-out-samples", type=int, default=None,
                   help=f"held-out samples (default {DEFAULTS['held_out_samples']}, at least the largest samples/eval)")
    p.add_argument("--objective", default=None, help="built-in objective (default fd-digits on digits, else fid)")
    p.add_argument("--nfe", type=int, default=None, help="sampling NFE (default: the demo's, DM 5 / CM 1)")
    p.add_argument("--noise-seed", type=int, default=0, help="search noise seed (held-out uses another)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="a tiny run (tests)")
    p.add_argument("--plan-only", action="store_true", help="print the plan and the time estimate, run nothing")
    add_stack_options(p)
    p.set_defaults(func=run)


def _values(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{flag} {text!r}: expected comma-separated numbers") from None


def _plan(args: argparse.Namespace):
    from lcsc.analysis.search_ablation import make_plan

    size = QUICK if args.quick else DEFAULTS
    for key, value in size.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    names = [f.strip() for f in args.factors.split(",") if f.strip()]
    values = {"samples": _values(args.samples_values, "samples-values"),
              "sigma": _values(args.sigma_values, "sigma-values"),
              "parents": _values(args.parents_values, "parents-values"), "convex": [True]}
    return make_plan({f: values.get(f, []) for f in names}, samples=args.samples, evals=args.evals,
                     seeds=args.search_seeds, parents=args.parents)


def _objective(args: argparse.Namespace, num_samples: int):
    from lcsc.checkpoints import discover_checkpoints
    from lcsc.experiment.config import DemoConfig
    from lcsc.models import read_model_config
    from lcsc.objectives import builtin_objective
    from lcsc.objectives.builtin import AUTO_DIGITS, resolve_auto

    name = args.objective or ("fd-digits" if resolve_auto("auto", args.checkpoints) == AUTO_DIGITS else "fid")
    if args.nfe is None:
        kind = read_model_config(discover_checkpoints(args.checkpoints)[0]).kind
        args.nfe = DemoConfig().dm_nfe if kind == "dm" else DemoConfig().cm_nfe
    args.objective = name
    return builtin_objective(args.checkpoints, name, num_samples=num_samples, nfe=args.nfe, device=args.device,
                             noise_seed=args.noise_seed)


def run(args: argparse.Namespace) -> int:
    from lcsc.analysis.output import write_analysis
    from lcsc.analysis.search_ablation import (
        ablation_markdown,
        estimate_seconds,
        plot_ablation,
        run_ablation,
        summarize,
    )
    from lcsc.merge import StackMerger

    plan = _plan(args)
    if args.cache_dir is None and not args.no_cache:
        args.cache_dir = args.output / "stack-cache"  # never write beside the (possibly read-only) run
    stack = open_stack(args)
    held_n = max(args.held_out_samples, plan.max_samples)
    objective = _objective(args, max(plan.max_samples, held_n))
    merger = StackMerger(stack, device=args.device)
    est = estimate_seconds(merger, objective, plan, held_n)
    print(plan.describe() + f"\nobjective {objective.name}, NFE {args.nfe}, held-out {held_n} samples; measured "
          f"{1e3 * est['seconds_per_sample']:.2f} ms/sample → estimated {est['total_s'] / 60:.1f} min", file=sys.stderr)
    if args.plan_only:
        return 0
    t0 = time.perf_counter()
    rows = run_ablation(merger, objective, plan, args.output / "searches", held_out_samples=held_n,
                        progress=sys.stderr.isatty())
    table = summarize(rows)
    d = plan.settings[0]
    info = {"window": str(args.checkpoints[0]), "objective": objective.name, "noise_seed": objective.noise_seed,
            "held_out_seed": objective.held_out_seed, "held_out_samples": held_n, "evals": plan.evals,
            "seeds": list(plan.seeds), "nfe": args.nfe, "K": merger.K, "wall_s": time.perf_counter() - t0,
            "estimate": est,
            "default": f"{d.samples} samples/eval, σ = 1/K, {d.parents} parents, unrestricted"}
    best = min(table, key=lambda r: r["held_out_mean"])["setting"]
    data = {"info": info, "table": table, "searches": rows, "best_setting_held_out": best}
    args.output.mkdir(parents=True, exist_ok=True)
    write_resolved_config(args.output / f"{WHAT}.config.json", f"analyze {WHAT}", args)
    paths = write_analysis(args.output, WHAT, data, plot_ablation(table, Path(info["window"]).as_posix()[-50:]),
                           ablation_markdown(table, info))
    for r in table:
        print(f"{r['setting']:<16} held-out FD {r['held_out_mean']:.3f} ± {r['held_out_std']:.3f}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
