"""``lcsc analyze ema-grid RUN -o DIR``: LCSC Tab. 10, every online and post-hoc EMA on search and held-out noise."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcsc.errors import ConfigError

__all__ = ["register", "run"]


def register(what: argparse._SubParsersAction) -> None:
    p = what.add_parser("ema-grid", help="LCSC Tab. 10: search-noise and held-out FD of every online EMA and "
                                         "post-hoc σ_rel EMA at chosen points")
    p.add_argument("run", type=Path, metavar="RUN", help="a training run folder (ema/, phema/, train_config.json)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--points", default="", metavar="S1,S2,…", help="training steps (default: the run's window ends)")
    p.add_argument("--sigma-rels", default=None, metavar="S1,S2,…",
                   help="post-hoc σ_rel grid (default: the demo's 13; 'none' for online EMAs only)")
    p.add_argument("--samples", type=int, default=None, help="search-noise samples per candidate (default 400)")
    p.add_argument("--eval-samples", type=int, default=None, help="held-out samples per seed (default 300)")
    p.add_argument("--eval-seeds", type=int, default=None, help="held-out noise seeds (default 2)")
    p.add_argument("--nfe", type=int, default=None, help="sampling steps (default 5 for a DM, 1 for a CM)")
    p.add_argument("--seed", type=int, default=0, help="search-noise seed; held-out seeds derive from it as in the demo (give the demo's --seed, e.g. 1 for "
                        "runs/demo-seed1, to score on that demo's noise)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the small models gain "
                   "little from more and stall badly when the cores are busy)")
    p.add_argument("--quick", action="store_true", help="32 samples, one held-out seed (tests)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _numbers(text: str, flag: str, cast) -> list:
    try:
        return [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: give a comma-separated list of numbers") from None


def _settings(args: argparse.Namespace):
    from lcsc.analysis.ema_grid import QUICK, GridSettings

    base = QUICK if args.quick else GridSettings()
    s = GridSettings(samples=args.samples or base.samples, eval_samples=args.eval_samples or base.eval_samples,
                     eval_seeds=args.eval_seeds or base.eval_seeds, nfe=args.nfe, seed=args.seed)
    if min(s.samples, s.eval_samples) < 16 or s.eval_seeds < 1 or (s.nfe is not None and s.nfe < 1):
        raise ConfigError("--samples and --eval-samples must be >= 16, --eval-seeds and --nfe >= 1")
    return s


def run(args: argparse.Namespace) -> int:
    import torch

    from lcsc.analysis.ema_grid import ema_grid, ema_grid_markdown, plot_ema_grid
    from lcsc.analysis.output import write_analysis
    from lcsc.cli.common import write_resolved_config

    sigmas = None if args.sigma_rels is None else \
        ([] if args.sigma_rels.strip().lower() == "none" else _numbers(args.sigma_rels, "--sigma-rels", float))
    points = _numbers(args.points, "--points", int) or None
    if args.threads < 1:
        raise ConfigError(f"--threads {args.threads} must be >= 1")
    torch.set_num_threads(args.threads)
    data = ema_grid(args.run, points, _settings(args), sigmas, progress=not args.no_progress)
    paths = write_analysis(args.output, "ema-grid", data, plot_ema_grid(data), ema_grid_markdown(data))
    write_resolved_config(args.output / "ema-grid.config.json", "analyze ema-grid", args)
    for p, b in data["best"].items():
        print(f"point {p}: best by search noise {b['by_search']}, by held-out {b['by_held_out']} "
              f"({'agree' if b['agree'] else 'disagree'})")
    print(f"wrote {paths['md']}")
    return 0
