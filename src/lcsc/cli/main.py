"""Entry point of the ``lcsc`` console script."""

from __future__ import annotations

import argparse
import sys

from lcsc import __version__
from lcsc.cli import (
    analyze_cmd,
    demo_cmd,
    ema_cmd,
    eval_cmd,
    inspect_cmd,
    merge_cmd,
    quickstart_cmd,
    search_cmd,
    train_cmd,
)
from lcsc.devices import check_device
from lcsc.errors import LCSCError
from lcsc.progress import enable_stage_lines, reset_stage_times, stage_lines_enabled

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``lcsc CMD: error: …``, exit 2); the usage is one ``--help`` away."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lcsc", description="Linear Combination of Saved Checkpoints")
    parser.add_argument("--version", action="version", version=f"lcsc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (demo_cmd, quickstart_cmd, inspect_cmd, merge_cmd, search_cmd, train_cmd, eval_cmd, ema_cmd,
                   analyze_cmd):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input ends with one clear message on stderr and exit code 2.

    Bad input is an :class:`LCSCError` (the library names the file or value) or, as a last resort, an
    :class:`OSError` (a path that cannot be read or written); both print ``lcsc CMD: error: …`` on one line.
    Anything else is a bug in lcsc or in a user objective: its traceback is kept, for the report.
    """
    args = build_parser().parse_args(argv)
    was_on = stage_lines_enabled()
    enable_stage_lines(True)  # one status line per stage on stderr: no silent minutes, on a terminal or in a log
    reset_stage_times()
    try:
        if getattr(args, "device", None) is not None:
            check_device(args.device)
        return int(args.func(args) or 0)
    except LCSCError as exc:  # bad input, named by the library (DiskFullError included: its message as is)
        return _fail(args.command, str(exc))
    except OSError as exc:  # last resort: a file or folder the command could not read or write
        return _fail(args.command, _os_error_text(exc))
    except KeyboardInterrupt:
        print(f"lcsc {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        enable_stage_lines(was_on)


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _fail(command: str, message: str) -> int:
    print(f"lcsc {command}: error: {_one_line(message)}", file=sys.stderr)
    return 2


def _os_error_text(exc: OSError) -> str:
    """``PATH: what went wrong`` (the reason as the OS words it), without the ``[Errno N]`` prefix."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return reason
    return f"{exc.filename}: {reason}" + (f" (with {exc.filename2})" if exc.filename2 is not None else "")


if __name__ == "__main__":
    sys.exit(main())
