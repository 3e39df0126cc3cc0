"""``lcsc eval RUN_OR_CKPT --samples N --nfe K --metrics fd,kid,pr,is --features inception|digits|digits2``
(diffusers runs and their merges: ``--model-config CONFIG --reference IMAGES|STATS.npz``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lcsc.atomic import check_writable, write_json
from lcsc.cli.common import write_resolved_config
from lcsc.cli.diffusers_options import add_diffusers_options, uses_diffusers
from lcsc.errors import ConfigError
from lcsc.metrics.checkpoint_eval import evaluate_checkpoints, expand_targets
from lcsc.metrics.spaces import FEATURE_SPACES
from lcsc.objectives.base import HELD_OUT_SEED_OFFSET, noise_fingerprint
from lcsc.objectives.diffusers_eval import diffusers_targets, evaluate_diffusers_checkpoints
from lcsc.precision import AUTOCAST_MODES
from lcsc.report.grid import save_image_grid

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="sample checkpoints on fixed noise and report FD/FID, KID, precision/recall, IS")
    p.add_argument("targets", nargs="+", type=Path,
                   help="checkpoint files, a run folder (last + latest EMA snapshots) or a checkpoint folder; with "
                        "--model-config: checkpoint-N/ or unet/ folders, a run folder of checkpoint-N/ folders, or "
                        "a merged .safetensors")
    p.add_argument("--samples", type=int, default=1000, help="images per checkpoint")
    p.add_argument("--nfe", type=int, default=None, help="network evaluations per sample (default 20 DM / 1 CM)")
    p.add_argument("--solver", choices=["ddim", "dpm-solver"], default="dpm-solver", help="DM sampler")
    p.add_argument("--metrics", default="fd,kid,pr", help="comma-separated: fd, kid, pr, is")
    p.add_argument("--features", choices=FEATURE_SPACES, default=None,
                   help="feature space (default: digits for digits runs, inception otherwise)")
    p.add_argument("--data", default=None, help="reference data (default: what the checkpoint was trained on)")
    p.add_argument("--seed", type=int, default=0,
                   help=f"the search's noise seed (lcsc search --noise-seed); scores use its held-out noise (seed + "
                        f"{HELD_OUT_SEED_OFFSET})")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--search-noise", action="store_true",
                       help="score on the search noise itself (biased for a searched merge; prints a warning)")
    noise.add_argument("--noise-seed", type=int, default=None, metavar="N",
                       help="score on exactly this noise seed (e.g. a demo report's held-out seed, to reproduce its "
                            "row; runs/demo/models/README.md lists the command)")
    noise.add_argument("--held-out", action="store_true", help=argparse.SUPPRESS)  # the default; kept for old scripts
    p.add_argument("--device", default="cpu")
    p.add_argument("--key", default=None,
                   help="with --model-config: the name prefix (or wrapped state dict) of the run's checkpoints, as "
                        "given to lcsc search; merges lcsc wrote hold the UNet's own keys and are read without it")
    p.add_argument("--autocast", choices=AUTOCAST_MODES, default="off",
                   help="sample with the network under bf16 autocast (default off; see benchmarks/mixed_precision.py)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="JSON results (default: RUN/eval.json for a run folder, else ./eval.json)")
    add_diffusers_options(p)
    p.set_defaults(func=run)


def _row(name: str, r) -> str:
    def f(v, w=9, p=4):
        return f"{'—':>{w}}" if v is None else f"{v:>{w}.{p}f}"

    return (f"{name:<44} {f(r.fd, 10, 3)} {f(r.kid_x1e3, 9, 3)} {f(r.precision, 6, 3)} {f(r.recall, 6, 3)} "
            f"{f(r.inception_score, 6, 3)}")


def _display_name(path: Path, targets: list[Path]) -> str:
    """The checkpoint's path inside the folder it came from (or parent/name)."""
    for t in targets:
        if t.is_dir() and path != t and path.is_relative_to(t):
            return str(path.relative_to(t)) if len(targets) == 1 else f"{t.name}/{path.relative_to(t)}"
    return f"{path.parent.name}/{path.name}"


def _diffusers_reference(args: argparse.Namespace):
    """--reference (or --data) for a diffusers run, which records no training data."""
    reference = args.reference if args.reference is not None else args.data
    if reference is None:
        raise ConfigError(f"--model-config {args.model_config}: a diffusers run records no training data; pass "
                          "--reference IMAGES_DIR or STATS.npz")
    return reference


def _evaluate(args: argparse.Namespace, paths: list[Path], seed: int) -> list:
    if not args.diffusers:
        return evaluate_checkpoints(paths, features=args.features, metrics=args.metrics, num_samples=args.samples,
                                    nfe=args.nfe, solver=args.solver, seed=seed, data=args.data, device=args.device,
                                    progress=True, autocast=args.autocast)
    return evaluate_diffusers_checkpoints(
        paths, model_config=args.model_config, reference=_diffusers_reference(args), key=args.key,
        features=args.features, metrics=args.metrics, num_samples=args.samples, nfe=args.nfe, solver=args.solver,
        seed=args.seed, search_noise=args.search_noise, device=args.device, progress=True, autocast=args.autocast)


def _targets(args: argparse.Namespace) -> list[Path]:
    args.diffusers = uses_diffusers(args)  # --model-config (--reference without it is refused)
    if not args.diffusers:
        if args.key is not None:
            raise ConfigError(f"--key {args.key}: only for diffusers runs with --model-config (lcsc checkpoints "
                              "hold their own model config)")
        return expand_targets(args.targets)
    _diffusers_reference(args)
    return diffusers_targets(args.targets)


def run(args: argparse.Namespace) -> int:
    paths = _targets(args)
    first = args.targets[0]  # a folder of checkpoints gets the JSON; a folder that is one checkpoint does not
    out = args.output or (first / "eval.json" if first.is_dir() and first not in paths else Path("eval.json"))
    check_writable(out)  # before sampling: a bad output path fails now, not after the evaluation
    seed = args.seed if args.search_noise else args.seed + HELD_OUT_SEED_OFFSET
    if args.noise_seed is not None:
        if args.noise_seed < 0 or args.diffusers:
            raise ConfigError(f"--noise-seed {args.noise_seed}: needs a seed >= 0 and an lcsc checkpoint (diffusers "
                              "runs take --seed)")
        seed = args.noise_seed
    if args.search_noise:
        print(f"lcsc eval: warning: scoring on the search noise (seed {seed}); a merge searched on this noise scores "
              "better here than it generalises — omit --search-noise to report held-out noise", file=sys.stderr)
    evals = _evaluate(args, paths, seed)
    space = evals[0].result.features
    role = "search" if args.search_noise else "given" if args.noise_seed is not None else "held-out"
    amp = "" if args.autocast == "off" else f", sampled under {args.autocast} autocast"
    print(f"\n{len(paths)} checkpoint(s), {args.samples} samples each, features {space}, {role} noise "
          f"(seed {seed}){amp}")
    print(f"{'checkpoint':<44} {'FD':>10} {'KID×10³':>9} {'prec':>6} {'recall':>6} {'IS':>6}  (all in {space})")
    rows = []
    for e in evals:
        name = _display_name(e.path, args.targets)
        print(_row(name[-44:], e.result))
        grid = save_image_grid(e.samples, out.parent / f"{out.stem}-samples" / f"{e.path.parent.name}-{e.path.stem}.png")
        rows.append({"checkpoint": str(e.path), "step": e.step, **e.result.to_dict(), "samples_png": str(grid)})
    write_json(out, {"seed": args.seed, "noise_seed": seed, "noise": role, "autocast": args.autocast,
                     "noise_sha": noise_fingerprint(torch.Generator().manual_seed(seed)), "rows": rows})
    write_resolved_config(out.with_suffix(".config.json"), "eval", args)
    print(f"wrote {out} and sample grids in {out.parent / (out.stem + '-samples')}")
    return 0
