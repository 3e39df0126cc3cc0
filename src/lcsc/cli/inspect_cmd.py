"""``lcsc inspect CKPT_DIR``: K, P, step order, dtypes, disk use, the stack's size and the stack cache's state.

Reads headers and metadata only and writes nothing (no cache folder, no temp file): safetensors files (plain,
diffusers, accelerate, LoRA) give everything in their JSON header; torch ``.pt/.pth/.bin/.ckpt`` zip files keep
their shapes in the pickle, so their ``data.pkl`` is read (weights-only unpickler, tensors on the meta device, the
storages never read); only legacy (non-zip) torch files are read whole. See :mod:`lcsc.checkpoints.headers`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lcsc.atomic import check_writable
from lcsc.checkpoints.survey import survey
from lcsc.cli.common import add_stack_options, human_bytes

__all__ = ["register", "run"]

_STATES = {
    "current": "current: reused by the next command",
    "stale": "stale: only caches of older versions of these files (rebuilt by the next command)",
    "unreadable": "unreadable: rebuilt by the next command",
    "none": "none yet: built by the next command",
    "not used": "not used (--no-cache: the stack is built in memory)",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="describe a checkpoint set and its stack cache (reads headers only)")
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


def _cache_lines(s: dict[str, Any]) -> list[str]:
    line = f"stack cache        {_STATES[s['cache_state']]}"
    if s["cache_path"] is None:
        return [line]
    line += f", {human_bytes(s['cache_disk_bytes'])} at {s['cache_path']}" if s["cache_disk_bytes"] else \
        f", at {s['cache_path']}"
    if s["stale_cache_bytes"]:
        line += f" ({human_bytes(s['stale_cache_bytes'])} of stale caches there)"
    return [line, f"free for the cache {human_bytes(s['cache_free_bytes'])} at {s['cache_free_at']}"]


def _read_line(reads: dict[str, int]) -> str:
    parts = ", ".join(f"{what} ×{n}" for what, n in reads.items())
    return f"read               {parts}" + ("" if "whole file (legacy torch format)" in reads else "; no tensor data")


def _lines(s: dict[str, Any], show_all: bool) -> list[str]:
    origins = sorted({o["from"] for o in s["order"]})
    sizes = ", ".join(f"{human_bytes(n)} as {name}" for name, n in s["stack_bytes_by_storage"].items())
    lines = [
        f"checkpoints (K)    {s['K']}",
        f"parameters (P)     {s['P']:,} float scalars in {s['tensors']} tensors",
        f"steps              {_steps_line(s['steps'])}  (order from {' and '.join(origins)})",
        "dtypes             " + ", ".join(f"{k}: {v:,}" for k, v in s["dtypes"].items()),
        f"non-float tensors  {', '.join(s['non_float_tensors']) or 'none'} (taken from the last checkpoint)",
        f"checkpoints on disk {human_bytes(s['checkpoints_disk_bytes'])}",
        f"stack (K×P)        {sizes}; --storage {s['storage']}: {human_bytes(s['stack_bytes'])}",
        *_cache_lines(s),
        _read_line(s["read"]),
        "order:",
    ]
    order = s["order"]
    shown = order if show_all or len(order) <= 12 else [*order[:5], None, *order[-5:]]
    lines += [
        f"  {o['step']:>10}  {Path(o['file']).name}" if o else f"  {'…':>10}  ({len(order) - 10} more)"
        for o in shown
    ]
    return lines + [f"warning: {w}" for w in s["warnings"]] + [f"note: {n}" for n in s["notes"]]


def run(args: argparse.Namespace) -> int:
    """Print the summary of :func:`lcsc.checkpoints.survey.survey` (headers only; nothing is written)."""
    if args.cache_dir is not None and not args.no_cache:
        check_writable(args.cache_dir, folder=True)  # a check only: the folder is not made
    s = survey(args.checkpoints, key=args.key, storage=args.storage, cache=not args.no_cache,
               cache_dir=args.cache_dir, progress=True)
    print(json.dumps(s, indent=2) if args.json else "\n".join(_lines(s, args.all)))
    return 0
