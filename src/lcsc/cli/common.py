"""Helpers shared by CLI commands: stack options, resolved-config files, human-readable sizes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lcsc import __version__, units
from lcsc.atomic import check_writable, write_json
from lcsc.checkpoints import CheckpointStack

__all__ = ["add_anchor_option", "add_stack_options", "open_stack", "human_bytes", "write_resolved_config"]


def add_stack_options(p: argparse.ArgumentParser) -> None:
    """Options every command that opens a checkpoint stack takes."""
    p.add_argument("--key", default=None, help="select a wrapped state dict, e.g. 'ema' for {'ema': sd}")
    p.add_argument(
        "--storage", default="float32", choices=["float32", "float16", "bfloat16"], help="stack storage dtype"
    )
    p.add_argument(
        "--no-cache", action="store_true", help="build the stack in RAM only (no memory-mapped cache file)"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where to keep the stack cache (default: beside the checkpoints)",
    )


def add_anchor_option(p: argparse.ArgumentParser) -> None:
    """``--anchor SPEC`` (repeatable): extra stack rows after the window's checkpoints."""
    p.add_argument("--anchor", action="append", default=None, metavar="SPEC",
                   help="an extra row after the window's checkpoints (repeatable): a checkpoint file of the same "
                        "architecture, ema (every RUN/ema/* at the window's end), ema:NAME, ema-start:NAME (that EMA "
                        "at the window's start) or phema:SIGMA (post-hoc EMA from RUN/phema); the window is "
                        "RUN/windows/<end>/")


def open_stack(args: argparse.Namespace) -> CheckpointStack:
    if args.cache_dir is not None and not args.no_cache:
        check_writable(args.cache_dir, folder=True)
    return CheckpointStack.open(
        args.checkpoints,
        key=args.key,
        storage=args.storage,
        cache=not args.no_cache,
        cache_dir=args.cache_dir,
        progress=True,  # a bar on a terminal, a line every 10 s in a log (lcsc.progress.track)
    )


def human_bytes(n: int) -> str:
    """Byte counts in CLI output, in binary units (KiB, MiB, …)."""
    return units.human_bytes(n, binary=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_resolved_config(
    path: Path, command: str, args: argparse.Namespace, extra: dict[str, Any] | None = None
) -> Path:
    """Write the command's resolved options (and anything else worth keeping) beside an output."""
    options = {k: _jsonable(v) for k, v in vars(args).items() if k != "func"}
    return write_json(
        path, {"lcsc_version": __version__, "command": command, "options": options, **(extra or {})}
    )
