"""``lcsc analyze landscape RUN_WINDOW [--points a=SPEC,b=SPEC,c=SPEC] -o DIR``: the LCSC paper's Fig. 3."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lcsc.analysis.landscape import (
    compute_landscape,
    default_points,
    landscape_markdown,
    parse_points,
    plot_landscape,
    point_anchors,
    resolve_point,
)
from lcsc.analysis.output import write_analysis
from lcsc.atomic import check_writable
from lcsc.checkpoints import CheckpointStack
from lcsc.checkpoints.anchor_specs import resolve_recorded_anchors
from lcsc.cli.common import write_resolved_config
from lcsc.errors import ConfigError
from lcsc.merge import StackMerger
from lcsc.objectives import builtin_objective
from lcsc.search import Journal

__all__ = ["register", "run"]

DEFAULT_SAMPLES = 500  # 121 points within 5 min on 2 contended cores at the demo's NFE (see docs of the analysis)
QUICK = dict(size=3, samples=50)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("landscape", help="score landscape of the plane through three coefficient vectors (Fig. 3)")
    p.add_argument("window", type=Path, help="a checkpoint window folder, e.g. RUN/windows/800")
    p.add_argument("--points", default=None,
                   help="three anchors NAME=SPEC,NAME=SPEC,NAME=SPEC; SPEC: a coefficient JSON file, a search folder "
                        "or journal.jsonl (its exported coefficients: plain, anchored or gradient search), last, "
                        "uniform, or ema:H (half-life H iterations); default last,uniform,ema:(window/4). The EMA "
                        "anchors of anchored searches are added to the stack as rows after the window")
    p.add_argument("--grid", type=int, default=11, help="grid points per axis (default 11; 0 and 1 always included)")
    p.add_argument("--range", dest="range_", default="-0.6:1.4", metavar="LO:HI",
                   help="u and v range (default -0.6:1.4, whose 11-point grid holds 0 and 1 exactly)")
    p.add_argument("--objective", default="fd",
                   help="built-in objective (default fd: FD_digits for digits runs, Inception FID otherwise)")
    p.add_argument("--samples", type=int, default=None, help=f"images per grid point (default {DEFAULT_SAMPLES})")
    p.add_argument("--nfe", type=int, default=None,
                   help="network evaluations per image (default: a search anchor's NFE, else 20 DM / 1 CM)")
    p.add_argument("--noise-seed", type=int, default=0, help="the fixed noise every grid point is scored on")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="keep the stack cache here (default: none, the stack is built in RAM; the run stays untouched)")
    p.add_argument("--quick", action="store_true", help=f"tiny settings for tests ({QUICK})")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.set_defaults(func=run)


def _range(text: str) -> tuple[float, float]:
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(lo), float(hi)
    except ValueError:
        raise ConfigError(f"--range {text!r}: expected LO:HI, e.g. -0.6:1.4") from None


def _search_nfe(points: list[tuple[str, str]]) -> int | None:
    """The NFE a search anchor was scored at (its journal header), so the landscape matches the search."""
    for _, spec in points:
        path = Path(spec)
        journal = path / "journal.jsonl" if path.is_dir() else path
        if journal.name.endswith(".jsonl") and journal.is_file():
            nfe = Journal.load(journal).header.get("objective", {}).get("nfe")
            if nfe:
                return int(nfe)
    return None


def _with_point_anchors(stack: CheckpointStack, points: list[tuple[str, str]], window: Path) -> CheckpointStack:
    """The window's stack plus the anchors (EMA weights) that the points' anchored searches weigh, resolved again
    from their recorded specs against ``window`` and checked against their hashes."""
    resolved = []
    for record, source in point_anchors(points):
        resolved += resolve_recorded_anchors([record], window, stack, source=source)
    return stack.with_anchors(resolved) if resolved else stack


def run(args: argparse.Namespace) -> int:
    if not args.window.is_dir():
        raise ConfigError(f"{args.window}: not a checkpoint window folder")
    size = QUICK["size"] if args.quick else args.grid
    samples = args.samples or (QUICK["samples"] if args.quick else DEFAULT_SAMPLES)
    lo, hi = _range(args.range_)
    if size < 2:
        raise ConfigError(f"--grid {size}: the landscape needs at least 2 points per axis")
    check_writable(args.output, folder=True)
    stack = CheckpointStack.open(args.window, cache=args.cache_dir is not None, cache_dir=args.cache_dir,
                                 progress=sys.stderr.isatty())
    points = parse_points(args.points) or default_points(list(stack.steps))
    stack = _with_point_anchors(stack, points, args.window)
    for _, spec in points:  # bad anchors fail before the reference statistics are built
        resolve_point(spec, list(stack.steps), [a.name for a in stack.anchors])
    nfe = args.nfe or _search_nfe(points)
    objective = builtin_objective(args.window, args.objective, num_samples=samples, nfe=nfe, device=args.device,
                                  noise_seed=args.noise_seed, progress=sys.stderr.isatty())
    start = time.perf_counter()
    land = compute_landscape(StackMerger(stack, device=args.device), objective, points, size=size, lo=lo, hi=hi,
                             progress=True)
    land.info.update(samples=samples, nfe=objective.nfe, noise_seed=args.noise_seed, window=str(args.window),
                     wall_time_s=time.perf_counter() - start)
    paths = write_analysis(args.output, "landscape", land.to_json(), plot_landscape(land), landscape_markdown(land))
    write_resolved_config(args.output / "landscape.config.json", "analyze landscape", args)
    m = land.minimum
    print(", ".join(f"{a.name} {a.direct_score:.5g}" for a in land.anchors) +
          f"; grid minimum {m['score']:.5g} at (u, v) = ({m['u']:.3g}, {m['v']:.3g}) "
          f"[{land.info['wall_time_s']:.0f} s]")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
