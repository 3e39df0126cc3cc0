"""``lcsc merge CKPT_DIR --coeffs coeffs.json -o merged.safetensors`` (LoRA adapters: ``--base`` / ``--adapter-out``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lcsc.atomic import check_writable
from lcsc.checkpoints import CheckpointStack, load_checkpoint, save_checkpoint
from lcsc.checkpoints.anchor_specs import resolve_anchors, resolve_recorded_anchors
from lcsc.checkpoints.lora import LORA_DELTA_KEY
from lcsc.checkpoints.lora_formats import KOHYA, PEFT, lora_kind
from lcsc.checkpoints.reader import discover_checkpoints
from lcsc.cli.common import (
    add_anchor_option,
    add_stack_options,
    human_bytes,
    open_stack,
    write_resolved_config,
)
from lcsc.cli.pipeline_export import (
    add_merge_pipeline_option,
    check_merge_pipeline,
    pipeline_line,
    write_merge_pipeline,
)
from lcsc.errors import ConfigError
from lcsc.merge import Coefficients, merge_coefficients, save_merged
from lcsc.merge.lora import AdapterSet, add_delta, combine_deltas, concatenate_adapters, save_adapter
from lcsc.merge.lora_files import concatenate_lora_files, save_lora_file

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="write Σ a_k θ_k for a coefficient file as one checkpoint (or LoRA adapter)")
    p.add_argument("checkpoints", type=Path, nargs="+",
                   help="a checkpoint folder, or checkpoint files; or LoRA adapter folders (a folder of them)")
    p.add_argument("--coeffs", type=Path, required=True, help="coefficient file (JSON: steps + coefficients)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="merged checkpoint (.safetensors); for LoRA adapters the full merged weights (needs --base)")
    p.add_argument(
        "--renormalize", action="store_true", help="divide coefficients by their sum instead of failing"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda: where the GEMM runs")
    lora = p.add_argument_group("LoRA adapters (peft folders: adapter_model.safetensors + adapter_config.json; "
                                "diffusers pytorch_lora_weights.safetensors or kohya .safetensors files)")
    lora.add_argument("--base", type=Path, default=None,
                      help="the adapters' base model weights (.safetensors, weights-only .pt/.bin, or a diffusers "
                           "folder; --key selects a wrapped state dict): -o gets base + Σ a_k ΔW_k")
    lora.add_argument("--adapter-out", type=Path, default=None, metavar="PATH",
                      help="write the merge as one LoRA in the inputs' format (exact: ranks concatenated, r = Σ r_k): "
                           "a peft adapter folder, or a .safetensors file for diffusers / kohya LoRA files")
    add_stack_options(p)
    add_anchor_option(p)
    add_merge_pipeline_option(p)
    p.set_defaults(func=run)


def _check_outputs(args: argparse.Namespace, kind: str | None) -> None:
    """Refuse inconsistent output options before any work, naming the option (``kind``: the inputs' LoRA format)."""
    adapters, out = kind is not None, "DIR" if kind == PEFT else "FILE.safetensors"
    if args.output is None and args.adapter_out is None:
        raise ConfigError("give -o OUTPUT.safetensors" + (f" (with --base) or --adapter-out {out}" if adapters else ""))
    if args.output is not None and args.output.suffix != ".safetensors":
        raise ConfigError(f"{args.output}: output must end in .safetensors")
    if adapters and args.anchor:
        raise ConfigError(f"--anchor applies to full checkpoints; {args.checkpoints[0]} holds LoRA adapters")
    if not adapters and (args.base is not None or args.adapter_out is not None):
        raise ConfigError(f"--base and --adapter-out apply to LoRA checkpoints; {args.checkpoints[0]} holds "
                          "full checkpoints")
    if adapters and (args.output is None) != (args.base is None):
        raise ConfigError("LoRA adapters: -o OUTPUT.safetensors writes full merged weights and needs --base "
                          "BASE_WEIGHTS (the adapters' base model), and --base needs -o; for a merged adapter use "
                          f"--adapter-out {out}")
    if kind == KOHYA and args.base is not None:
        raise ConfigError("--base: kohya LoRA module names (lora_unet_…) are not the base model's weight names; "
                          "write the merge with --adapter-out FILE.safetensors")
    if args.base is not None and not args.base.exists():
        raise ConfigError(f"--base {args.base}: no such file or folder")
    if args.output is not None:
        check_writable(args.output)
    if args.adapter_out is not None and kind not in (None, PEFT) and args.adapter_out.suffix != ".safetensors":
        raise ConfigError(f"--adapter-out {args.adapter_out}: {kind} LoRA files merge into one .safetensors file")
    if args.adapter_out is not None:
        check_writable(args.adapter_out, folder=kind == PEFT)


def run(args: argparse.Namespace) -> int:
    kind = lora_kind(discover_checkpoints(args.checkpoints)[0])  # one kind per run: discover_checkpoints checks
    adapters = kind is not None
    _check_outputs(args, kind)
    check_merge_pipeline(args, adapters)
    coeffs = Coefficients.load(args.coeffs, renormalize=args.renormalize)
    if adapters:
        return _merge_adapters(args, coeffs, kind)
    stack = _with_anchors(args, open_stack(args), coeffs)
    merged = merge_coefficients(stack, coeffs, device=args.device, source=str(args.coeffs))
    pipeline = write_merge_pipeline(args, merged)  # --model-config; first: a config that does not fit writes nothing
    save_merged(args.output, stack, merged, coeffs)
    config_path = args.output.with_name(args.output.stem + ".config.json")
    extra = {"steps": stack.steps, "hashes": stack.hashes, "coefficients": coeffs.to_json()}
    if stack.anchors:
        extra["anchors"] = [a.to_json() for a in stack.anchors]
    write_resolved_config(config_path, "merge", args, extra)
    anchors = f" and {len(stack.anchors)} anchors ({', '.join(a.name for a in stack.anchors)})" if stack.anchors else ""
    print(
        f"merged {stack.K_window} checkpoints (steps {stack.steps[0]}…{stack.steps[-1]}){anchors} into {args.output} "
        f"({human_bytes(args.output.stat().st_size)}); config: {config_path}"
    )
    if pipeline is not None:
        print(pipeline_line(pipeline))
    return 0


def _with_anchors(args: argparse.Namespace, stack: CheckpointStack, coeffs: Coefficients) -> CheckpointStack:
    """The stack with the anchors --anchor names or, without --anchor, those the coefficient file recorded
    (resolved again from their specs and checked against their hashes)."""
    if args.anchor:
        return stack.with_anchors(resolve_anchors(args.anchor, args.checkpoints, stack, key=args.key))
    if coeffs.anchors:
        return stack.with_anchors(resolve_recorded_anchors(coeffs.anchors, args.checkpoints, stack,
                                                           source=str(args.coeffs), key=args.key))
    return stack


def _merge_adapters(args: argparse.Namespace, coeffs: Coefficients, kind: str) -> int:
    """Σ a_k ΔW_k computed exactly from the factors: full weights (base + ΔW) and/or one concatenated adapter. Both
    are computed before either is written, so bad input leaves no partial output."""
    aset = AdapterSet.open(args.checkpoints)
    coeffs.check_steps(aset.steps)
    meta, written = aset.provenance(coeffs), []
    adapter = None
    if args.adapter_out is not None:
        combine = concatenate_adapters if kind == PEFT else concatenate_lora_files
        adapter = combine(aset.adapters, coeffs)
    full, config = None, None
    if args.output is not None:
        base = load_checkpoint(args.base, key=args.key)
        if base.metadata.get(LORA_DELTA_KEY) == "true":
            raise ConfigError(f"--base {args.base}: a LoRA adapter; --base takes the full base model's weights")
        full = add_delta(base.tensors, combine_deltas(aset.adapters, coeffs), args.base)
        config = json.loads(base.metadata["config"]) if "config" in base.metadata else None
    if adapter is not None and kind == PEFT:
        save_adapter(args.adapter_out, *adapter, meta)
        written.append(f"adapter {args.adapter_out}/ (r={adapter[1]['r']}, {len(adapter[1]['target_modules'])} "
                       "modules)")
    elif adapter is not None:
        save_lora_file(args.adapter_out, adapter, meta)
        written.append(f"{kind} LoRA file {args.adapter_out} ({human_bytes(args.adapter_out.stat().st_size)})")
    if full is not None:
        save_checkpoint(args.output, full, step=aset.steps[-1], config=config,
                        extra={**meta, "lcsc_lora_base": str(args.base)})
        written.append(f"full weights {args.output} ({human_bytes(args.output.stat().st_size)})")
    config_path = (args.output.with_name(args.output.stem + ".config.json") if args.output is not None
                   else args.adapter_out / "lcsc_merge.config.json" if kind == PEFT
                   else args.adapter_out.with_name(args.adapter_out.stem + ".config.json"))
    write_resolved_config(config_path, "merge", args,
                          {"steps": aset.steps, "hashes": aset.hashes, "coefficients": coeffs.to_json()})
    print(f"merged {aset.K} LoRA adapters (steps {aset.steps[0]}…{aset.steps[-1]}) into " + " and ".join(written)
          + f"; config: {config_path}")
    return 0
