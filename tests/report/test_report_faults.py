"""Reports under faults: figures, image grids and the search's result files keep their previous version on a full
disk (one DiskFullError naming the file) and after a kill, and a rerun overwrites them cleanly."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from lcsc.checkpoints import CheckpointStack
from lcsc.errors import DiskFullError
from lcsc.merge import StackMerger
from lcsc.objectives import FunctionObjective
from lcsc.report import save_image_grid
from lcsc.report.plots import plot_curves
from lcsc.search import SearchConfig, run_search, write_search_outputs
from tests.faults import PARTIAL, Killed, enospc, hashes, temp_files

pytestmark = pytest.mark.filterwarnings("ignore:merged .* had negative entries")


def _fail(monkeypatch, owner, method: str, make) -> None:
    """``owner.method(self, target, ...)`` writes a few bytes to its target, then ``make()`` is raised."""

    def fake(self, target, *args, **kw):
        Path(target).write_bytes(PARTIAL)
        raise make()

    monkeypatch.setattr(owner, method, fake)


def test_figure_full_disk_keeps_the_previous_png_and_closes_the_figure(tmp_path: Path, monkeypatch) -> None:
    out = plot_curves({"dm": ([1, 2, 3], [1.0, 0.5, 0.3])}, tmp_path / "loss.png")
    before = out.read_bytes()
    open_before = plt.get_fignums()
    _fail(monkeypatch, Figure, "savefig", enospc)
    with pytest.raises(DiskFullError, match=f"^{out}: cannot write: no space left on device"):
        plot_curves({"dm": ([1, 2, 3], [1.0, 0.4, 0.2])}, out)
    assert out.read_bytes() == before and temp_files(tmp_path) == []
    assert plt.get_fignums() == open_before, "the failed figure was left open"


@pytest.mark.parametrize("make", [enospc, Killed], ids=["full-disk", "kill"])
def test_image_grid_keeps_the_previous_png(tmp_path: Path, monkeypatch, make) -> None:
    out = save_image_grid(torch.zeros(4, 1, 8, 8), tmp_path / "samples.png")
    before = out.read_bytes()
    _fail(monkeypatch, Image.Image, "save", make)
    with pytest.raises(DiskFullError if make is enospc else Killed):
        save_image_grid(torch.ones(4, 1, 8, 8), out)
    assert out.read_bytes() == before and temp_files(tmp_path) == []
    monkeypatch.undo()
    save_image_grid(torch.ones(4, 1, 8, 8), out)  # the rerun overwrites cleanly: white cells now
    with Image.open(out) as img:
        assert img.getextrema()[1] == 255 and out.read_bytes() != before


def test_search_outputs_keep_their_previous_version_and_rerun_cleanly(ckpt_dir: Path, tmp_path: Path,
                                                                      monkeypatch) -> None:
    merger = StackMerger(CheckpointStack.open(ckpt_dir, progress=False))
    objective = FunctionObjective(lambda sd: float(sd["3.weight"].pow(2).mean()))
    config = SearchConfig(evals=10, seed=0)
    result = run_search(merger, objective, config, tmp_path, progress=False)
    write_search_outputs(result, merger, objective, config, tmp_path)
    before = hashes(tmp_path)
    real = Path.write_text

    def full_disk(self, text, *args, **kw):  # the card's markdown is the last file written
        if self.name.startswith(".provenance.md."):
            real(self, text[:20], *args, **kw)
            raise enospc()
        return real(self, text, *args, **kw)

    monkeypatch.setattr(Path, "write_text", full_disk)
    result.best_score = -1.0  # a different card, so a half-written one would show
    with pytest.raises(DiskFullError, match=r"provenance\.md: cannot write: no space left on device"):
        write_search_outputs(result, merger, objective, config, tmp_path)
    assert hashes(tmp_path)["provenance.md"] == before["provenance.md"] and temp_files(tmp_path) == []
    monkeypatch.undo()
    paths = write_search_outputs(result, merger, objective, config, tmp_path)
    assert "-1" in paths["card_md"].read_text() and temp_files(tmp_path) == []
