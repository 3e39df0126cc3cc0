"""``lcsc analyze consistency MODEL MODEL … -o DIR``: same-noise PSNR between models (faster-DM-training paper)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lcsc.analysis.consistency import (
    UNRELATED_SEED_OFFSET,
    consistency,
    markdown,
    plot_consistency,
    sample_grid,
    to_json,
)
from lcsc.analysis.output import write_analysis
from lcsc.atomic import atomic_path
from lcsc.cli.common import write_resolved_config
from lcsc.devices import check_device
from lcsc.errors import ConfigError

__all__ = ["register", "run"]

QUICK = {"samples": 16, "grid_noises": 4}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "consistency",
        help="do different models map the same noise to similar images? pairwise PSNR (faster-DM-training Sec. 3.1)",
        description="Sample every model from the same noise seed (deterministic samplers) and report the pairwise "
                    "PSNR matrix (images in [-1, 1], MAX = 2), against a baseline on unrelated noise "
                    f"(seed + {UNRELATED_SEED_OFFSET}). Writes consistency.{{json,png,md}}, "
                    "consistency_samples.png and consistency.config.json into -o DIR.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="a checkpoint (.safetensors: last, EMA, `lcsc merge` output, …) or a run folder "
                        "(its last.safetensors), optionally labelled name=path")
    p.add_argument("--samples", type=int, default=None, help="images per model (default 256; --quick 16)")
    p.add_argument("--seed", type=int, default=0, help="noise seed shared by all models")
    p.add_argument("--nfe", type=int, default=None, help="NFE for every model (overrides --dm-nfe/--cm-nfe)")
    p.add_argument("--dm-nfe", type=int, default=20, help="DM sampling steps (default 20)")
    p.add_argument("--cm-nfe", type=int, default=1, help="CM sampling steps (default 1)")
    p.add_argument("--solver", choices=["ddim", "dpm-solver"], default="dpm-solver", help="DM ODE sampler")
    p.add_argument("--grid-noises", type=int, default=None, help="noises (columns) in the sample grid (default 8)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="a small run for tests (16 samples, 4 grid columns)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.set_defaults(func=run)


def _resolve(args: argparse.Namespace) -> None:
    if args.samples is None:
        args.samples = QUICK["samples"] if args.quick else 256
    if args.grid_noises is None:
        args.grid_noises = QUICK["grid_noises"] if args.quick else 8
    if args.nfe is not None:
        args.dm_nfe = args.cm_nfe = args.nfe
    for name in ("samples", "grid_noises", "dm_nfe", "cm_nfe"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(args, name)} must be >= 1")


def run(args: argparse.Namespace) -> int:
    _resolve(args)
    device = check_device(args.device)
    start = time.perf_counter()
    result = consistency(args.models, samples=args.samples, seed=args.seed, dm_nfe=args.dm_nfe,
                         cm_nfe=args.cm_nfe, solver=args.solver, grid_noises=args.grid_noises, device=device)
    seconds = time.perf_counter() - start
    data = to_json(result)
    data["seconds"] = round(seconds, 2)
    out = Path(args.output)
    paths = write_analysis(out, "consistency", data, plot_consistency(result), markdown(result))
    with atomic_path(out / "consistency_samples.png") as tmp:
        sample_grid(result).save(tmp, format="PNG")
    write_resolved_config(out / "consistency.config.json", "analyze consistency", args)
    same, base = data["off_diagonal_same_mean"], data["baseline_unrelated_mean"]
    print(f"consistency of {len(result.labels)} models ({args.samples} samples, {seconds:.1f} s): same-noise PSNR "
          f"{'inf' if same is None else f'{same:.2f}'} dB off-diagonal vs {base:.2f} dB on unrelated noise")
    print(f"wrote {paths['json']}, {paths['png']}, {paths['md']}, {out / 'consistency_samples.png'}")
    return 0
