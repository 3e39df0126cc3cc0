"""``lcsc merge CKPT_DIR --coeffs coeffs.json -o merged.safetensors``."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcsc.atomic import check_writable
from lcsc.cli.common import add_stack_options, human_bytes, open_stack, write_resolved_config
from lcsc.errors import ConfigError
from lcsc.merge import Coefficients, merge_coefficients, save_merged

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="write Σ a_k θ_k for a coefficient file as one checkpoint")
    p.add_argument("checkpoints", type=Path, nargs="+", help="a checkpoint folder, or checkpoint files")
    p.add_argument("--coeffs", type=Path, required=True, help="coefficient file (JSON: steps + coefficients)")
    p.add_argument("-o", "--output", type=Path, required=True, help="merged checkpoint (.safetensors)")
    p.add_argument(
        "--renormalize", action="store_true", help="divide coefficients by their sum instead of failing"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda: where the GEMM runs")
    add_stack_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.output.suffix != ".safetensors":
        raise ConfigError(f"{args.output}: output must end in .safetensors")
    check_writable(args.output)
    coeffs = Coefficients.load(args.coeffs, renormalize=args.renormalize)
    stack = open_stack(args)
    merged = merge_coefficients(stack, coeffs, device=args.device)
    save_merged(args.output, stack, merged, coeffs)
    config_path = args.output.with_name(args.output.stem + ".config.json")
    write_resolved_config(
        config_path,
        "merge",
        args,
        {"steps": stack.steps, "hashes": stack.hashes, "coefficients": coeffs.to_json()},
    )
    print(
        f"merged {stack.K} checkpoints (steps {stack.steps[0]}…{stack.steps[-1]}) into {args.output} "
        f"({human_bytes(args.output.stat().st_size)}); config: {config_path}"
    )
    return 0
