"""``lcsc search CKPT_DIR --objective SPEC --evals N -o OUT_DIR`` (and ``lcsc search --resume OUT_DIR``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lcsc.atomic import check_writable, write_json
from lcsc.checkpoints import discover_checkpoints
from lcsc.checkpoints.anchor_specs import resolve_anchors
from lcsc.checkpoints.lora_formats import is_lora_checkpoint
from lcsc.cli.common import add_anchor_option, add_stack_options, open_stack
from lcsc.cli.diffusers_options import (
    add_diffusers_options,
    diffusers_held_out_objectives,
    diffusers_search_objective,
    uses_diffusers,
)
from lcsc.cli.pipeline_export import write_search_pipeline
from lcsc.cli.search_pool import add_pool_options, check_pool_options, make_pool
from lcsc.cli.search_saved import RESUME_KEPT, RESUME_TAKEN, read_saved, save_args
from lcsc.devices import check_device
from lcsc.errors import ConfigError
from lcsc.merge import Coefficients, StackMerger, groups_by_prefix
from lcsc.metrics.evaluate import KID_SCALE, kid_label
from lcsc.objectives import builtin_objective, is_builtin, load_objective
from lcsc.objectives.cross_space import cross_space_objectives, cross_space_report
from lcsc.precision import AUTOCAST_MODES
from lcsc.progress import stage, stage_line, stage_times
from lcsc.search import SearchConfig, run_search, write_search_outputs
from lcsc.search.grad_config import GradConfig
from lcsc.search.gradient import check_differentiable, run_gradient_search

__all__ = ["register"]



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search LCSC coefficients (Algorithm 1 or CMA-ES) against an objective")
    p.add_argument("checkpoints", type=Path, nargs="*", help="a checkpoint folder, or checkpoint files")
    p.add_argument("--objective", default=None,
                   help="path/to/file.py:function, package.module:function, or a built-in: auto (default for "
                        "lcsc runs: FD_digits on digits, FID otherwise), fid, fd-digits, fd-digits2, fd-digits3, "
                        "kid[-SPACE], or mean:NAME,NAME (each term divided by its value at the best initial "
                        "individual)")
    p.add_argument(
        "--direction", choices=["minimize", "maximize"], default=None, help="override the objective's"
    )
    p.add_argument(
        "-o", "--output", type=Path, help="output folder (journal, coefficients, merged checkpoint, card)"
    )
    p.add_argument("--resume", type=Path, metavar="OUT_DIR", help="continue the search journalled in OUT_DIR")
    d = SearchConfig()
    p.add_argument(
        "--evals",
        type=int,
        default=None,
        help=f"evaluation budget, candidates scored (default {d.evals}; on --resume: as saved)",
    )
    p.add_argument(
        "--generation-size", type=int, default=d.generation_size, help="children per generation (E)"
    )
    p.add_argument("--parents", type=int, default=d.parents, help="parent pool: the top M of the population")
    p.add_argument("--optimizer", default=None,
                   help="alg1 (the paper's Algorithm 1, default), cmaes, sep-cmaes, or grad (gradient LCSC: Adam "
                        "through the sampler on fresh noise; built-in objectives)")
    p.add_argument("--space", default=None,
                   help="coefficient space: full, ema-basis:D (EMA profiles + last checkpoint) or spline:D")
    p.add_argument("--popsize", type=int, default=None, help="CMA-ES population (default 4 + 3 ln n)")
    p.add_argument("--sigma", type=float, default=None,
                   help="mutation std (Alg. 1) or initial step size σ0 (CMA-ES), in coefficient units (default 1/K)")
    p.add_argument("--racing", action="store_true", default=None,
                   help="score each candidate on a prefix of the samples first; only the best go to the full count")
    p.add_argument("--race-fraction", type=float, default=None,
                   help=f"racing prefix, a fraction of --samples (default {d.race_fraction})")
    p.add_argument("--race-keep", type=float, default=None,
                   help=f"fraction of each generation scored on the full count (default {d.race_keep})")
    p.add_argument("--max-samples", type=int, default=None, help="stop after generating this many samples")
    p.add_argument("--shrink", type=float, default=None, metavar="λ",
                   help="export w0 + λ(w* − w0): λ of the way from the best initial individual to the best (default 1)")
    p.add_argument("--revalidate", type=int, default=None, metavar="K",
                   help="re-score the K best on validation noise (another seed) and export the best there")
    p.add_argument("--mix-prob", type=float, default=d.mix_prob, help="crossover probability p_mix")
    p.add_argument(
        "--convex", action="store_true", help="clip coefficients to >= 0 (paper Table 14 ablation)"
    )
    p.add_argument(
        "--groups", default=None, help="JSON file {name: [globs]}, or 'prefix[:depth]' for per-block groups"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--max-time", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--half-lives", default=None, help="EMA init half-lives in iterations, comma-separated")
    p.add_argument(
        "--interval", type=int, default=None, help="iterations between checkpoints (default: from steps)"
    )
    p.add_argument(
        "--init-coeffs",
        type=Path,
        action="append",
        default=[],
        help="extra initial individual (coefficient file)",
    )
    p.add_argument("--device", default="cpu", help="where merging (and a built-in objective's sampling) runs")
    g = p.add_argument_group("built-in generative objectives")
    g.add_argument("--samples", type=int, default=1000, help="images per candidate")
    g.add_argument("--nfe", type=int, default=None, help="network evaluations per image (default 20 DM / 1 CM)")
    g.add_argument("--solver", choices=["ddim", "dpm-solver"], default="dpm-solver")
    g.add_argument("--data", default=None, help="reference data (default: what the checkpoints were trained on)")
    g.add_argument("--noise-seed", type=int, default=0, help="search noise seed (held-out reports use another)")
    g.add_argument("--batched-sampling", action="store_true",
                   help="sample a whole generation at once (vmap over stacked weights; see benchmarks; not with "
                        "--workers, whose workers score one candidate at a time)")
    g.add_argument("--autocast", choices=AUTOCAST_MODES, default="off",
                   help="sample with the network under bf16 autocast (default off; held-out reports stay float32; "
                        "see benchmarks/mixed_precision.py)")
    _add_grad_options(p)
    add_stack_options(p)
    add_anchor_option(p)
    add_diffusers_options(p)
    add_pool_options(p)
    p.set_defaults(func=run)


GRAD_KEYS = ("batch_size", "lr", "lr_final", "average_from")  # a resumed gradient search keeps these; --steps may grow


def _add_grad_options(p: argparse.ArgumentParser) -> None:
    d = GradConfig()
    g = p.add_argument_group("gradient search (--optimizer grad)")
    g.add_argument("--steps", type=int, default=None, help=f"Adam steps (default {d.steps}; on --resume: as saved)")
    g.add_argument("--batch-size", type=int, default=None,
                   help=f"fresh samples per step (default {d.batch_size})")
    g.add_argument("--lr", type=float, default=None, help=f"Adam learning rate on the coefficients (default {d.lr})")
    g.add_argument("--lr-final", type=float, default=None,
                   help=f"the cosine-decayed learning rate at the last step, a fraction of --lr (default {d.lr_final})")
    g.add_argument("--average-from", type=float, default=None,
                   help=f"average the iterates after this fraction of the steps (default {d.average_from})")


def _grad_config(args: argparse.Namespace) -> GradConfig | None:
    """The gradient search's settings (None for the black-box optimisers), checked before any work."""
    if args.optimizer != "grad":
        given = [f"--{k.replace('_', '-')}" for k in ("steps", *GRAD_KEYS) if getattr(args, k, None) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with --optimizer grad")
        return None
    for flag, value in (("--workers", args.workers), ("--ray-address", args.ray_address)):
        if value is not None:
            raise ConfigError(f"{flag} with --optimizer grad: the gradient search runs in one process (a pool "
                              "scores black-box candidates); drop the flag")
    for flag, bad in (("--racing", args.racing), ("--revalidate", args.revalidate), ("--convex", args.convex),
                      ("--shrink", args.shrink is not None and args.shrink != 1.0),
                      ("--space", args.space not in (None, "full"))):
        if bad:
            raise ConfigError(f"{flag} is an Algorithm 1 / CMA-ES setting; --optimizer grad searches the full space "
                              "and guards its export on validation noise itself")
    d = GradConfig()
    kw = {k: getattr(args, k) if getattr(args, k) is not None else getattr(d, k) for k in ("steps", *GRAD_KEYS)}
    return GradConfig(**kw, seed=args.seed, max_time=args.max_time)


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill a --resume run's options from the saved ones (the budget and time limit may change)."""
    if args.resume is None:
        if not args.checkpoints or not args.output:
            raise ConfigError("search needs CKPT_DIR and -o OUT_DIR (or --resume OUT_DIR)")
        check_writable(args.output, folder=True)
        args.objective = args.objective or "auto"
        args.evals = args.evals if args.evals is not None else SearchConfig().evals
        _fill_defaults(args)
        if args.optimizer == "grad":  # saved resolved, so a resume that names a default is not a change
            for key in ("steps", *GRAD_KEYS):
                if getattr(args, key) is None:
                    setattr(args, key, getattr(GradConfig(), key))
        return args
    saved = read_saved(args.resume)
    for key in RESUME_TAKEN:
        setattr(args, key, saved[key])
    check_device(args.device)  # the saved one: this machine may lack it
    for key, default in (("samples", 1000), ("nfe", None), ("solver", "dpm-solver"), ("data", None),
                         ("noise_seed", 0), ("autocast", "off")):
        setattr(args, key, saved.get(key, default))
    d = SearchConfig()
    for key in RESUME_KEPT:
        setattr(args, key, _resumed(args, saved, key, getattr(d, key)))
    args.anchor = _resumed(args, saved, "anchor", None)  # the anchors are rows of the journalled vectors
    args.max_samples = args.max_samples if args.max_samples is not None else saved.get("max_samples")
    args.revalidate = args.revalidate if args.revalidate is not None else saved.get("revalidate")
    args.shrink = args.shrink if args.shrink is not None else saved.get("shrink")
    args.evals = args.evals if args.evals is not None else saved["evals"]
    args.steps = args.steps if args.steps is not None else saved.get("steps")
    for key in GRAD_KEYS:
        setattr(args, key, _resumed(args, saved, key, None))
    args.checkpoints = args.checkpoints or [Path(p) for p in saved["checkpoints"]]
    args.init_coeffs = [Path(p) for p in saved["init_coeffs"]]
    args.output = args.resume
    return args


def _resumed(args: argparse.Namespace, saved: dict, key: str, default):
    """The saved value of a setting a resume must keep; a different value given now is refused, naming it."""
    value, given = saved.get(key, default), getattr(args, key)
    if given is not None and given != value:
        raise ConfigError(f"--resume {args.resume}: cannot resume with a different --{key.replace('_', '-')} "
                          f"({value!r} saved, {given!r} now); drop the flag or start a new output folder")
    return value


def _fill_defaults(args: argparse.Namespace) -> None:
    d = SearchConfig()
    for key in RESUME_KEPT:
        if getattr(args, key) is None:
            setattr(args, key, getattr(d, key))


def _groups(spec: str | None, stack) -> dict[str, list[str]] | None:
    if spec is None:
        return None
    if spec.startswith("prefix"):
        depth = spec.partition(":")[2] or "1"
        if not depth.isdigit() or int(depth) < 1:
            raise ConfigError(f"--groups {spec!r}: expected prefix or prefix:DEPTH with an integer DEPTH >= 1")
        return groups_by_prefix(stack.layout, int(depth))
    try:
        groups = json.loads(Path(spec).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--groups {spec}: cannot read a JSON object of name → globs ({exc})") from None
    if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
        raise ConfigError(f"--groups {spec}: expected a JSON object {{name: [glob, ...]}}")
    return groups


def _initial(paths: list[Path], merger: StackMerger) -> dict:
    out = {}
    for path in paths:
        coeffs = Coefficients.load(path, renormalize=True)
        coeffs.check_rows(merger.stack, str(path))
        out[path.stem] = coeffs.values
    return out


def _objective(args: argparse.Namespace):
    """A built-in generative objective from the checkpoints' metadata, or a user objective."""
    if uses_diffusers(args):  # --model-config: a diffusers run's UNet2DModel, --reference images or statistics
        return diffusers_search_objective(args)
    if not is_builtin(args.objective):
        return load_objective(args.objective, args.direction)
    if args.direction == "maximize":
        raise ConfigError(f"--objective {args.objective}: built-in objectives are minimised")
    if any(is_lora_checkpoint(p) for p in discover_checkpoints(args.checkpoints)):
        raise ConfigError(f"--objective {args.objective}: LoRA adapters need a user objective (file.py:function; it "
                          "receives the merged ΔW state dict, see lcsc.merge.lora.apply_delta)")
    return builtin_objective(args.checkpoints, args.objective, data=args.data, num_samples=args.samples,
                             nfe=args.nfe, solver=args.solver, device=args.device, noise_seed=args.noise_seed,
                             progress=True, batched=bool(getattr(args, "batched_sampling", False)),
                             autocast=getattr(args, "autocast", None))


def _merger(args: argparse.Namespace) -> StackMerger:
    """The stack merger the options describe, anchors included (on the driver, and again on each Ray worker)."""
    stack = open_stack(args)
    if args.anchor:
        stack = stack.with_anchors(resolve_anchors(args.anchor, args.checkpoints, stack, key=args.key))
    return StackMerger(stack, _groups(args.groups, stack), device=args.device)


def _half_lives(text) -> tuple[float, ...] | None:
    if not isinstance(text, str):
        return text  # None, or the saved list of a resumed search
    try:
        return tuple(float(h) for h in text.split(","))
    except ValueError:
        raise ConfigError(f"--half-lives {text!r}: expected comma-separated numbers of iterations") from None


def _on_event(kind: str, info: dict, args: argparse.Namespace) -> None:
    if kind == "ready" and args.resume is None:
        save_args(args)
    elif kind == "estimate":
        stage_line(_estimate_text(info, args))


def _estimate_text(info: dict, args: argparse.Namespace) -> str:
    """The time left: the remaining candidates, revalidation and the held-out report (three rows, sampled once),
    at the measured seconds per evaluation; with the setup stages' times so far."""
    per, left = info["seconds_per_eval"], info["evaluations_left"]
    extra = (args.revalidate or 0) + (3 if is_builtin(args.objective) else 0)
    when = {0: "the initial population", 1: "generation 1"}.get(info.get("generation", 1), info.get("generation"))
    setup = ", ".join(f"{k} {v:.0f} s" for k, v in stage_times().items())
    unit = "steps" if str(when).startswith("step") else "candidates"
    return (f"estimate after {when} ({per:.1f} s/{unit[:-1]}): {(left + extra) * per / 60:.1f} min left ({left} {unit}"
            + (f", {extra} held-out/revalidation evaluations" if extra else "") + ")"
            + (f"; setup took {setup}" if setup else ""))


def run(args: argparse.Namespace) -> int:
    args = _resolve(args)
    grad = _grad_config(args)
    check_pool_options(args)
    half_lives = _half_lives(args.half_lives)
    config = SearchConfig(
        evals=args.evals, generation_size=args.generation_size, parents=args.parents, sigma=args.sigma,
        mix_prob=args.mix_prob, convex=args.convex, seed=args.seed, max_time=args.max_time,
        interval=args.interval, half_lives=half_lives, optimizer="alg1" if grad else args.optimizer, space=args.space,
        popsize=args.popsize, racing=bool(args.racing), race_fraction=args.race_fraction, race_keep=args.race_keep,
        max_samples=args.max_samples, revalidate=args.revalidate or 0,
        shrink=args.shrink if args.shrink is not None else SearchConfig().shrink,
    )  # fmt: skip
    objective = _objective(args)
    if grad is not None:
        check_differentiable(objective, args.objective)
    merger = _merger(args)
    initial = _initial(args.init_coeffs, merger)
    events = lambda kind, info: _on_event(kind, info, args)  # noqa: E731
    if grad is not None:
        result = run_gradient_search(merger, objective, config, grad, args.output, initial=initial,
                                     resume=args.resume is not None, progress=True, on_event=events)
    else:
        with make_pool(args, _merger, _objective) as pool:
            result = run_search(merger, objective, config, args.output, initial=initial,
                                resume=args.resume is not None, progress=True, on_event=events, pool=pool)
    _report(result, objective)
    held = None
    if is_builtin(args.objective):
        with stage("held-out report", "the best, the best initial individual and the last checkpoint on held-out "
                   "noise", heartbeat_s=5.0):
            held = _held_out_report(args, merger, result)
    if held is not None:
        write_json(args.output / "held_out.json", held)
    paths = write_search_outputs(result, merger, objective, config, args.output, held_out=held)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    write_search_pipeline(args, paths["checkpoint"])  # a diffusers run (--model-config): OUT/pipeline/
    return 0


def _held_out_report(args: argparse.Namespace, merger: StackMerger, result) -> dict:
    """Score the best merge, the best initial individual and the last checkpoint on held-out noise (never seen by
    the search) in every feature space of the data, searched or not (built-in objectives only)."""
    objectives = diffusers_held_out_objectives(args) if uses_diffusers(args) else cross_space_objectives(
        args.checkpoints, args.objective, data=args.data, num_samples=args.samples, nfe=args.nfe, solver=args.solver,
        device=args.device, noise_seed=args.noise_seed)
    last = np.zeros_like(result.best)
    last.reshape(merger.G, merger.K)[:, merger.K_window - 1] = 1.0  # the last window checkpoint, not an anchor
    rows = {"best": result.best, f"best initial ({result.best_initial_name})": result.best_initial,
            f"last checkpoint (step {merger.steps[-1]})": last}
    reports = cross_space_report(objectives, dict(zip(rows, merger.merge_many(np.stack(list(rows.values()))))))
    init_label = list(rows)[1]
    out = {"seed": next(iter(objectives.values()))[0].noise_seed, "spaces": {}}
    for rep in reports:
        out["spaces"][rep.space] = {"searched": rep.searched, "scores": rep.scores,
                                    "gain_vs_best_initial": rep.gain("best", init_label)}
        print(f"held-out FD_{rep.space} ({'searched' if rep.searched else 'never searched'}): " +
              ", ".join(f"{k} {v:.5g}" for k, v in rep.scores.items()) +
              f"; gain over the best initial individual {100 * rep.gain('best', init_label):+.1f} %")
    return out


def _fmt(v) -> str:
    return "failed" if v is None else f"{v:.6g}"


def _report(result, objective) -> None:
    direction = getattr(objective, "direction", "minimize")
    print(f"\nbest {direction[:3]} score {result.best_score:.6g} after {result.evaluations} evaluations "
          f"({result.objective_calls} objective calls, stopped by {result.stopped}, {result.wall_time_s:.1f} s)")  # fmt: skip
    for name, score in result.init_scores.items():
        print(f"  initial {name:<22} {'failed' if score is None else f'{score:.6g}'}")
    if getattr(objective, "metric", "") == "kid":
        print(f"  (KID scores are raw MMD² in {objective.features.name} features, the journal's units; best as "
              f"{kid_label(objective.features.name)}: {KID_SCALE * result.best_score:.4g})")
    if getattr(result, "gradient", None) is not None:
        g, guard = result.gradient, result.gradient["guard"]
        losses = g["losses"]
        print(f"  gradient: {g['steps_done']} steps × {g['settings']['batch_size']} fresh samples from the start "
              f"{g['start']}; loss {losses[0]:.4g} → {losses[-1]:.4g}" if losses else "  gradient: no step taken")
        print("  guard on validation noise: " + ", ".join(f"{n} {_fmt(v)}" for n, v in zip(guard["names"],
                                                                                       guard["scores"]))
              + f"; exported: {guard['picked']}")
    if result.failures:
        print(
            f"  {len(result.failures)} failed evaluations; first: #{result.failures[0]['index']}: {result.failures[0]['error']}"
        )
