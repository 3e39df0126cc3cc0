"""Every analysis writes <what>.json, <what>.png and <what>.md, atomically, into its folder."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lcsc.analysis.output import write_analysis  # noqa: E402


def test_write_analysis_writes_the_three_files(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = write_analysis(tmp_path / "out", "landscape", {"minimum": 1.5}, fig, "# Landscape\n\nmin 1.5\n\n")
    assert json.loads(paths["json"].read_text()) == {"minimum": 1.5}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["md"].read_text() == "# Landscape\n\nmin 1.5\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["landscape.json", "landscape.md", "landscape.png"]
    assert fig.number not in plt.get_fignums()  # the figure is closed


def test_write_analysis_without_a_figure(tmp_path):
    paths = write_analysis(tmp_path, "table", {"a": [1, 2]}, None, "a table")
    assert "png" not in paths and not (tmp_path / "table.png").exists()
