"""What every ``lcsc analyze <what>`` writes: ``<what>.json``, ``<what>.png`` and a short ``<what>.md`` in one folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcsc.atomic import write_json, write_text
from lcsc.report.plots import save_figure

__all__ = ["AnalysisOutput", "write_analysis"]


class AnalysisOutput(dict):
    """The written paths by kind: ``json``, ``png``, ``md``."""


def write_analysis(out_dir: str | Path, what: str, data: dict[str, Any], figure: Any | None,
                   markdown: str) -> AnalysisOutput:
    """Write ``data`` as ``what.json``, ``figure`` (a matplotlib Figure, closed after) as ``what.png`` and
    ``markdown`` as ``what.md`` into ``out_dir``, each atomically; returns the paths."""
    out = Path(out_dir)
    paths = AnalysisOutput(json=write_json(out / f"{what}.json", data))
    if figure is not None:
        paths["png"] = save_figure(figure, out / f"{what}.png")
    paths["md"] = write_text(out / f"{what}.md", markdown.rstrip() + "\n")
    return paths
