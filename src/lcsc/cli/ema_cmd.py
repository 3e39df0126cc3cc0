"""``lcsc ema RUN --sigma-rel S | --half-life H [--step N] -o out.safetensors`` and ``lcsc ema RUN --sweep -o DIR``:
post-hoc EMA (Karras et al. 2024, EDM2, Sec. 3.1) from a run's power-EMA snapshots."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lcsc.atomic import check_writable, write_json
from lcsc.checkpoints.format import read_metadata, save_checkpoint
from lcsc.cli.common import write_resolved_config
from lcsc.errors import ConfigError
from lcsc.merge.posthoc import PROFILE_TOL, PosthocEMA, Reconstruction
from lcsc.objectives import builtin_objective, is_builtin, load_objective
from lcsc.objectives.base import direction_sign

__all__ = ["register", "parse_grid"]

SWEEP_POINTS = 16


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ema", help="post-hoc EMA: any EMA length after training, from the run's power-EMA snapshots")
    p.add_argument("run", type=Path, help="run folder holding phema/ (record with lcsc train --phema-sigma-rels)")
    p.add_argument("--sigma-rel", type=float, default=None, help="target power-EMA width σ_rel (e.g. 0.07)")
    p.add_argument("--half-life", type=float, default=None,
                   help="target: the weights an online EMA of this half-life (iterations) puts on the training "
                        "iterates, without its share on the initial weights (0.5^(step/H), printed), renormalised; "
                        "the online EMA itself only when step >> H")
    p.add_argument("--sweep", action="store_true", help="score a grid of σ_rel with an objective; keep the best")
    p.add_argument("--step", type=int, default=None, help="training step to reconstruct at (default: the last snapshot)")
    p.add_argument("-o", "--output", type=Path, required=True, help="out.safetensors (a sweep: an output folder)")
    p.add_argument("--tol", type=float, default=PROFILE_TOL, help="largest relative profile error accepted")
    g = p.add_argument_group("sweep")
    g.add_argument("--grid", default=None, metavar="LO:HI:N", help="N log-spaced σ_rel from LO to HI "
                   f"(default: {SWEEP_POINTS} over the reconstructable range at the step)")
    g.add_argument("--sigma-rels", default=None, help="explicit σ_rel values a,b,c instead of --grid")
    g.add_argument("--objective", default="auto", help="a built-in (auto, fid, fd-digits, …) or path/to/file.py:function")
    g.add_argument("--direction", choices=["minimize", "maximize"], default=None, help="override the objective's")
    g.add_argument("--samples", type=int, default=1000, help="images per σ_rel (built-in objectives)")
    g.add_argument("--nfe", type=int, default=None, help="network evaluations per image (default 20 DM / 1 CM)")
    g.add_argument("--solver", choices=["ddim", "dpm-solver"], default="dpm-solver")
    g.add_argument("--data", default=None, help="reference data (default: what the run was trained on)")
    g.add_argument("--noise-seed", type=int, default=0, help="search noise seed")
    g.add_argument("--device", default="cpu", help="where a built-in objective samples")
    p.set_defaults(func=run)


def parse_grid(text: str) -> list[float]:
    """``LO:HI:N`` → N log-spaced values from LO to HI."""
    try:
        lo, hi, n = text.split(":")
        lo, hi, n = float(lo), float(hi), int(n)
    except ValueError:
        raise ConfigError(f"--grid {text!r} must be LO:HI:N, e.g. 0.01:0.28:16") from None
    if not 0 < lo < hi or n < 2:
        raise ConfigError(f"--grid {text!r}: need 0 < LO < HI and N >= 2")
    return [float(v) for v in np.geomspace(lo, hi, n)]


def _floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r} must be comma-separated numbers") from None
    if not values:
        raise ConfigError(f"{flag} {text!r}: give at least one value")
    return values


def _save(path: Path, ph: PosthocEMA, rec: Reconstruction) -> Path:
    """Write the reconstruction with its target, error and snapshot list; model config and data from the snapshots."""
    meta = read_metadata(rec.paths[-1])
    config = json.loads(meta["config"]) if "config" in meta else None
    snaps = [{"path": str(p), "weight": float(w)} for p, w in zip(rec.paths, rec.weights)]
    extra = {k: meta[k] for k in ("data",) if k in meta}
    extra.update(posthoc_target=rec.target, profile_error=repr(rec.profile_error),
                 weight_sum=repr(rec.weight_sum), snapshots=json.dumps(snaps))
    if rec.sigma_rel is not None:
        extra["posthoc_sigma_rel"] = repr(float(rec.sigma_rel))
    else:
        extra["posthoc_half_life"] = repr(float(rec.half_life))
        extra["posthoc_initial_share"] = repr(float(rec.initial_share))
    images = meta.get("images_seen") if _snapshot_step(meta) == rec.step else None
    return save_checkpoint(path, ph.combine(rec), step=rec.step, images_seen=int(images) if images else None,
                           config=config, extra=extra)


def _snapshot_step(meta: dict[str, str]) -> int | None:
    return int(meta["step"]) if "step" in meta else None


def _summary(rec: Reconstruction) -> dict:
    out = {"target": rec.target, "step": rec.step, "profile_error": rec.profile_error, "weight_sum": rec.weight_sum,
           "snapshots": [{"path": str(p), "weight": float(w)} for p, w in zip(rec.paths, rec.weights)]}
    if rec.initial_share is not None:
        out["initial_share"] = rec.initial_share
    return out


def _target_text(rec: Reconstruction) -> str:
    """The target as printed; a half-life target says which share of the online EMA it leaves out."""
    if rec.initial_share is None:
        return rec.target
    return (f"{rec.target} (the online EMA without its {100 * rec.initial_share:.1f} % share on the initial "
            "weights, renormalised over the iterates)")


def run(args: argparse.Namespace) -> int:
    chosen = [f for f, v in (("--sigma-rel", args.sigma_rel), ("--half-life", args.half_life),
                             ("--sweep", args.sweep or None)) if v is not None]
    if len(chosen) != 1:
        raise ConfigError(f"give exactly one of --sigma-rel, --half-life and --sweep (got {', '.join(chosen) or 'none'})")
    ph = PosthocEMA.open(args.run, tol=args.tol)
    step = ph.steps[-1] if args.step is None else args.step
    if args.sweep:
        return _sweep(args, ph, step)
    if args.output.suffix != ".safetensors":
        raise ConfigError(f"{args.output}: output must end in .safetensors")
    check_writable(args.output)
    rec = ph.coefficients(step, sigma_rel=args.sigma_rel, half_life=args.half_life)
    _save(args.output, ph, rec)
    config_path = args.output.with_name(args.output.stem + ".config.json")
    write_resolved_config(config_path, "ema", args, {"reconstruction": _summary(rec)})
    print(f"{_target_text(rec)} at step {step} from {len(rec.paths)} snapshots: profile error {rec.profile_error:.4f}, "
          f"Σx = {rec.weight_sum:.6f} → {args.output} (config: {config_path})")
    return 0


def _objective(args: argparse.Namespace, checkpoints: list[Path]):
    """A built-in generative objective from the snapshots' metadata, or a user objective (as ``lcsc search``)."""
    if not is_builtin(args.objective):
        return load_objective(args.objective, args.direction)
    if args.direction == "maximize":
        raise ConfigError(f"--objective {args.objective}: built-in objectives are minimised")
    return builtin_objective(checkpoints, args.objective, data=args.data, num_samples=args.samples, nfe=args.nfe,
                             solver=args.solver, device=args.device, noise_seed=args.noise_seed,
                             progress=sys.stderr.isatty())


def _grid(args: argparse.Namespace, ph: PosthocEMA, step: int) -> list[float]:
    if args.sigma_rels is not None and args.grid is not None:
        raise ConfigError("give --grid or --sigma-rels, not both")
    if args.sigma_rels is not None:
        return sorted(_floats(args.sigma_rels, "--sigma-rels"))
    if args.grid is not None:
        return parse_grid(args.grid)
    lo, hi = ph.sigma_rel_range(step)
    grid = [float(v) for v in np.geomspace(lo, hi, SWEEP_POINTS)]
    kept = [s for s in grid if ph.reconstructable(step, s)]  # drops a gap between far-apart stored σ_rels
    if len(kept) < len(grid):
        print(f"{len(grid) - len(kept)} of {len(grid)} grid σ_rels fall in a gap of the reconstructable range at "
              f"step {step}; sweeping the other {len(kept)}", file=sys.stderr)
    return kept


def _scores(objective, ph: PosthocEMA, recs: list[Reconstruction]) -> list[float]:
    """Each reconstruction's score; a mean objective is first calibrated on all of them (each term divided by its
    value at the best grid point, as the search does on its initial individuals)."""
    if hasattr(objective, "calibrate"):
        states = [ph.combine(r) for r in tqdm(recs, desc="σ_rel sweep: reconstruct", unit="σ")]
        return [float(v) for v in objective.calibrate(states)["scores"]]
    return [float(objective.score(ph.combine(r))) for r in tqdm(recs, desc="σ_rel sweep", unit="σ")]


def _sweep(args: argparse.Namespace, ph: PosthocEMA, step: int) -> int:
    """Reconstruct and score every σ_rel of the grid; write sweep.json, sweep.png, best.safetensors."""
    check_writable(args.output, folder=True)
    grid = _grid(args, ph, step)
    recs = [ph.coefficients(step, sigma_rel=s) for s in grid]  # every bad value fails before any scoring
    objective = _objective(args, [recs[-1].paths[-1]])
    direction = getattr(objective, "direction", "minimize")
    scores = _scores(objective, ph, recs)
    keyed = [direction_sign(direction) * s if math.isfinite(s) else math.inf for s in scores]
    if all(math.isinf(k) for k in keyed):
        raise ConfigError(f"--objective {args.objective}: no σ_rel of the grid scored a finite value")
    best = int(np.argmin(keyed))
    edge = "lower" if best == 0 else "upper" if best == len(grid) - 1 else None
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"sigma_rel": s, "score": v, "profile_error": r.profile_error, "weight_sum": r.weight_sum}
            for s, v, r in zip(grid, scores, recs)]
    name = getattr(objective, "name", args.objective)
    write_json(out / "sweep.json", {"step": step, "objective": name, "direction": direction, "rows": rows,
                                    "best": rows[best], "best_on_edge": edge})
    from lcsc.report.plots import plot_sweep  # matplotlib only when a sweep is plotted

    plot_sweep(grid, scores, out / "sweep.png", best=best, ylabel=f"{name} ({direction[:3]})",
               title=f"post-hoc EMA at step {step}")
    _save(out / "best.safetensors", ph, recs[best])
    write_resolved_config(out / "config.json", "ema", args, {"step": step, "grid": grid,
                                                             "best": _summary(recs[best])})
    print(f"best σ_rel {grid[best]:.4g} at step {step}: {name} {scores[best]:.6g} (profile error "
          f"{recs[best].profile_error:.4f}, Σx = {recs[best].weight_sum:.6f}) → {out / 'best.safetensors'}")
    print(f"the best sits on the grid's {edge} edge; extend the grid past it" if edge else
          f"the best is inside the grid [{grid[0]:.4g}, {grid[-1]:.4g}]")
    return 0
