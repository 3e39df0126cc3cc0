"""Reports: image grids, result tables (Markdown/HTML), Markdown pages as HTML, and figures."""

from __future__ import annotations

from lcsc.report.grid import image_grid, save_image_grid
from lcsc.report.markdown_html import markdown_to_html
from lcsc.report.tables import html_table, markdown_table

__all__ = ["html_table", "image_grid", "markdown_table", "markdown_to_html", "save_image_grid"]
