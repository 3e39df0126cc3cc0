"""Reading CLI output in tests: the problem lines of stderr, without the ``[lcsc] …`` stage lines; a benchmark script
run in-process with its output captured."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

__all__ = ["problem_lines", "run_script"]


def problem_lines(text: str) -> list[str]:
    """Non-empty lines of ``text`` that are not stage lines (``[lcsc] …``, see :mod:`lcsc.progress`)."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("[lcsc] ")]


def run_script(script: Path, args: list[str], monkeypatch, capsys) -> tuple[int | str | None, str, str]:
    """A script's ``__main__`` run in this process, not in a new interpreter (which would import torch and lcsc
    again): (exit code or ``sys.exit`` message, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    capsys.readouterr()
    try:
        runpy.run_path(str(script), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err
