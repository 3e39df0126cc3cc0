"""Entry point of the ``lcsc`` console script."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable

from lcsc import __version__
from lcsc.devices import check_device
from lcsc.errors import LCSCError
from lcsc.progress import enable_stage_lines, reset_stage_times, stage_lines_enabled

__all__ = ["COMMANDS", "build_parser", "main"]

# each command's module (lcsc.cli.<module>, with register(subparsers)), in the order ``lcsc --help`` lists them;
# imported only when needed: ``lcsc search …`` imports the search command's module alone, not the demo, the
# analyses (matplotlib) or diffusers, which makes every short ``lcsc`` process start faster
COMMANDS = {"demo": "demo_cmd", "quickstart": "quickstart_cmd", "inspect": "inspect_cmd", "merge": "merge_cmd",
            "search": "search_cmd", "train": "train_cmd", "eval": "eval_cmd", "ema": "ema_cmd",
            "analyze": "analyze_cmd"}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``lcsc CMD: error: …``, exit 2); the usage is one ``--help`` away."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``lcsc`` parser with every command, or with only ``commands`` (names of :data:`COMMANDS`)."""
    parser = _Parser(prog="lcsc", description="Linear Combination of Saved Checkpoints")
    parser.add_argument("--version", action="version", version=f"lcsc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = set(COMMANDS if commands is None else commands)
    for name, module in COMMANDS.items():
        if name in wanted:
            importlib.import_module(f"lcsc.cli.{module}").register(sub)
    return parser


def _parser_for(argv: list[str]) -> argparse.ArgumentParser:
    """``lcsc CMD …`` needs CMD's parser alone (its usage, help and errors are the same as in the full parser);
    anything else (``lcsc``, ``lcsc --help``, an unknown command) gets every command, for the listing."""
    return build_parser([argv[0]]) if argv and argv[0] in COMMANDS else build_parser()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input ends with one clear message on stderr and exit code 2.

    Bad input is an :class:`LCSCError` (the library names the file or value) or, as a last resort, an
    :class:`OSError` (a path that cannot be read or written); both print ``lcsc CMD: error: …`` on one line.
    Anything else is a bug in lcsc or in a user objective: its traceback is kept, for the report.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser_for(argv).parse_args(argv)
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
