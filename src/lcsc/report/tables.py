"""Result tables as Markdown and HTML (numbers formatted once, the same in both)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Column", "markdown_table", "html_table"]

Column = tuple[str, Callable[[dict[str, Any]], str]]  # (header, row → cell text)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """A GitHub-flavoured Markdown table."""
    head = "| " + " | ".join(h for h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r) for _, fmt in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], highlight: Callable | None = None) -> str:
    """An HTML table; ``highlight(row)`` → True bolds the row."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in columns)
    body = []
    for r in rows:
        style = ' style="font-weight:bold"' if highlight and highlight(r) else ""
        cells = "".join(f"<td>{html.escape(fmt(r))}</td>" for _, fmt in columns)
        body.append(f"<tr{style}>{cells}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"
