"""``lcsc inspect CKPT_DIR``: K, P, step order, dtypes, disk use and stack-cache state."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lcsc.cli.common import add_stack_options, human_bytes, open_stack

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="describe a checkpoint set and its stack cache")
    p.add_argument("checkpoints", type=Path, nargs="+", help="a checkpoint folder, or checkpoint files")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--all", action="store_true", help="list every checkpoint (default: first and last five)")
    add_stack_options(p)
    p.set_defaults(func=run)


def _steps_line(steps: list[int]) -> str:
    gaps = {b - a for a, b in zip(steps, steps[1:])}
    if len(gaps) == 1:
        return f"{steps[0]} … {steps[-1]} every {gaps.pop()}"
    return ", ".join(map(str, steps[:6])) + (" …" if len(steps) > 6 else "")


def run(args: argparse.Namespace) -> int:
    s = open_stack(args).summary()
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    origins = sorted({o["from"] for o in s["order"]})
    lines = [
        f"checkpoints (K)    {s['K']}",
        f"parameters (P)     {s['P']:,} float scalars in {s['tensors']} tensors",
        f"steps              {_steps_line(s['steps'])}  (order from {' and '.join(origins)})",
        "dtypes             " + ", ".join(f"{k}: {v:,}" for k, v in s["dtypes"].items()),
        f"non-float tensors  {', '.join(s['non_float_tensors']) or 'none'} (taken from the last checkpoint)",
        f"checkpoints on disk {human_bytes(s['checkpoints_disk_bytes'])}",
        f"stack              {human_bytes(s['stack_bytes'])} of {s['storage']}",
        f"stack cache        {s['cache_state']}"
        + (f", {human_bytes(s['cache_disk_bytes'])} on disk at {s['cache_path']}" if s["cache_path"] else ""),
        "order:",
    ]
    order = s["order"]
    shown = order if args.all or len(order) <= 12 else [*order[:5], None, *order[-5:]]
    lines += [
        f"  {o['step']:>10}  {Path(o['file']).name}" if o else f"  {'…':>10}  ({len(order) - 10} more)"
        for o in shown
    ]
    lines += [f"note: {n}" for n in s["notes"]]
    print("\n".join(lines))
    return 0
