"""Entry point of the ``lcsc`` console script."""

from __future__ import annotations

import argparse
import sys

from lcsc import __version__
from lcsc.cli import (
    demo_cmd,
    ema_cmd,
    eval_cmd,
    inspect_cmd,
    merge_cmd,
    quickstart_cmd,
    search_cmd,
    train_cmd,
)
from lcsc.errors import LCSCError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lcsc", description="Linear Combination of Saved Checkpoints")
    parser.add_argument("--version", action="version", version=f"lcsc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (demo_cmd, quickstart_cmd, inspect_cmd, merge_cmd, search_cmd, train_cmd, eval_cmd, ema_cmd):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input ends with one clear message on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LCSCError as exc:
        print(f"lcsc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lcsc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
