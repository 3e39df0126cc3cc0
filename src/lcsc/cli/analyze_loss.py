"""``lcsc analyze loss-landscape`` and ``lcsc analyze hessian``: the faster-DM-training paper's Sec. 3.3 (Figs. 3–4)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcsc.analysis.fixed_loss import TIMESTEP_CHOICES
from lcsc.cli.common import write_resolved_config
from lcsc.errors import ConfigError

__all__ = ["register", "run_landscape", "run_hessian"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("--batch", type=int, default=None, help="fixed evaluation batch size")
    p.add_argument("--seed", type=int, default=0, help="seed of the fixed batch (images, timesteps, noise)")
    p.add_argument("--timesteps", choices=TIMESTEP_CHOICES, default="uniform",
                   help="timestep distribution of the DM evaluation batch (clts: the fully ramped CLTS Gaussian)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loss-landscape", help="training loss along (1−t)·θ_A + t·θ_B for checkpoint pairs")
    p.add_argument("checkpoints", nargs="*", type=Path, help="CKPT_A CKPT_B (or use --pair)")
    p.add_argument("--pair", action="append", default=[], metavar="A,B", help="a checkpoint pair (repeatable)")
    p.add_argument("--label", action="append", default=[], help="legend label per pair, in order (repeatable)")
    p.add_argument("--range", default=None, metavar="LO:HI", help="t range (default -0.5:1.5)")
    p.add_argument("--points", type=int, default=None, help="number of t values (default 21; 0 and 1 are added)")
    _common(p)
    p.set_defaults(func=run_landscape)
    h = sub.add_parser("hessian", help="top-k Hessian eigenvalues of the training loss (Lanczos on HVPs)")
    h.add_argument("checkpoints", nargs="+", type=Path, help="one or more checkpoints to compare")
    h.add_argument("--k", type=int, default=None, help="number of top eigenvalues (default 5)")
    h.add_argument("--ncv", type=int, default=None, help="Lanczos basis size (default 20)")
    h.add_argument("--maxiter", type=int, default=None, help="Lanczos restarts (default 20)")
    h.add_argument("--tol", type=float, default=None, help="eigsh relative tolerance (default 1e-3)")
    _common(h)
    h.set_defaults(func=run_hessian)


def _pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    if len(args.checkpoints) % 2:
        raise ConfigError(f"positional checkpoints come in pairs A B; got {len(args.checkpoints)}")
    pairs = [(str(a), str(b)) for a, b in zip(args.checkpoints[::2], args.checkpoints[1::2])]
    for spec in args.pair:
        parts = spec.split(",")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"--pair {spec!r} must be A,B (two checkpoint paths)")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise ConfigError("give a checkpoint pair: CKPT_A CKPT_B or --pair A,B")
    return pairs


def _range(spec: str | None, default: tuple[float, float]) -> tuple[float, float]:
    if spec is None:
        return default
    try:
        lo, hi = (float(x) for x in spec.split(":"))
    except ValueError as exc:
        raise ConfigError(f"--range {spec!r} must be LO:HI (two numbers)") from exc
    return lo, hi


def run_landscape(args: argparse.Namespace) -> int:
    from lcsc.analysis import loss_landscape as ll
    from lcsc.analysis.output import write_analysis

    size = ll.QUICK if args.quick else ll.DEFAULTS
    lo, hi = _range(args.range, (size["lo"], size["hi"]))
    points = args.points if args.points is not None else size["points"]
    batch = args.batch if args.batch is not None else size["batch"]
    ll.t_grid(lo, hi, points)  # validate before loading anything
    result = ll.analyze_loss_landscape(_pairs(args), lo=lo, hi=hi, points=points, batch=batch, seed=args.seed,
                                       timesteps=args.timesteps, labels=args.label or None,
                                       progress=not args.no_progress)
    write_analysis(args.out, "loss-landscape", result.to_dict(), ll.plot_loss_landscape(result),
                   ll.landscape_markdown(result))
    write_resolved_config(args.out / "loss-landscape.config.json", "analyze loss-landscape", args)
    for c in result.curves:
        print(f"{c.label}: loss(0)={c.loss_a:.5g} loss(1)={c.loss_b:.5g} min={c.min_loss:.5g} at t={c.t_min:.3g} "
              f"barrier={c.barrier:.3g}")
    print(f"wrote {args.out}/loss-landscape.{{json,png,md}}")
    return 0


def run_hessian(args: argparse.Namespace) -> int:
    from lcsc.analysis import hessian as hs
    from lcsc.analysis.output import write_analysis

    size = hs.QUICK if args.quick else hs.DEFAULTS
    pick = {name: getattr(args, name) if getattr(args, name) is not None else size[name]
            for name in ("k", "batch", "ncv", "maxiter", "tol")}
    result = hs.analyze_hessian([str(c) for c in args.checkpoints], seed=args.seed, timesteps=args.timesteps,
                                progress=not args.no_progress, **pick)
    write_analysis(args.out, "hessian", result.to_dict(), hs.plot_hessian(result), hs.hessian_markdown(result))
    write_resolved_config(args.out / "hessian.config.json", "analyze hessian", args)
    for e in result.entries:
        print(f"{e.checkpoint}: top eigenvalues {', '.join(f'{v:.4g}' for v in e.eigenvalues)} "
              f"({e.n_hvp} HVPs, {e.seconds:.1f} s{'' if e.converged else ', NOT converged'})")
    print(f"wrote {args.out}/hessian.{{json,png,md}}")
    return 0
