"""Reading CLI output in tests: the problem lines of stderr, without the ``[lcsc] …`` stage lines."""

from __future__ import annotations

__all__ = ["problem_lines"]


def problem_lines(text: str) -> list[str]:
    """Non-empty lines of ``text`` that are not stage lines (``[lcsc] …``, see :mod:`lcsc.progress`)."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("[lcsc] ")]
