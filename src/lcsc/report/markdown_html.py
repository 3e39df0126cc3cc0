"""A report's HTML page from its Markdown (CommonMark with GitHub tables, rendered by markdown-it-py), so the
``.html`` always holds exactly what the ``.md`` holds: every table, list and figure."""

from __future__ import annotations

import html

from markdown_it import MarkdownIt

__all__ = ["markdown_to_html", "markdown_body"]

_MD = MarkdownIt("commonmark", {"html": False}).enable("table")  # raw HTML in a report is shown, never run
_STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em}table{border-collapse:collapse;"
          "margin:1em 0}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}img{max-width:100%}")


def markdown_body(md: str) -> str:
    """The HTML of ``md``'s blocks."""
    return _MD.render(md)


def _first_heading(md: str) -> str | None:
    tokens = _MD.parse(md)
    for i, token in enumerate(tokens[:-1]):
        if token.type == "heading_open":
            inline = tokens[i + 1]
            return "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
    return None


def markdown_to_html(md: str, title: str | None = None) -> str:
    """A standalone HTML page holding everything in ``md``; ``title`` defaults to its first heading."""
    title = title if title is not None else (_first_heading(md) or "report")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head>\n<body>\n{markdown_body(md)}</body></html>\n")
