"""``lcsc analyze ema-grid``: every candidate scored, search-noise FD equal to a direct FDObjective, bad points."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lcsc.analysis.ema_grid import QUICK, ema_grid
from lcsc.cli.main import main
from lcsc.errors import ConfigError
from tests.output import problem_lines

CANDIDATES = {"hl-2", "hl-8", "sigma-0.050", "sigma-0.100"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("run")
        assert main(["train", "dm", "--iterations", "30", "--batch-size", "32", "--channels", "8", "--record-window",
                     "20", "--record-interval", "5", "--sample-count", "0", "--ema-half-life", "2,8", "--ema-at", "20",
                     "--phema-sigma-rels", "0.05,0.1", "--phema-every", "5", "-o", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def grid(run_dir):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return ema_grid(run_dir, [20, 30], QUICK, [0.05, 0.1], progress=False)
    finally:
        torch.set_num_threads(threads)


def test_every_candidate_at_every_point(grid):
    assert grid["kind"] == "dm" and grid["nfe"] == 5 and grid["points"] == [20, 30]
    assert {(r["point"], r["candidate"]) for r in grid["rows"]} == {(p, c) for p in (20, 30) for c in CANDIDATES}
    for p in ("20", "30"):
        at = [r for r in grid["rows"] if r["point"] == int(p)]
        best = grid["best"][p]
        assert best["by_held_out"] == min(at, key=lambda r: r["held_out_fd"])["candidate"]
        assert best["agree"] == (best["by_search"] == best["by_held_out"])


def test_every_search_score_and_best_equal_a_direct_fd_objective_on_the_files(run_dir, grid, one_thread):
    """Each candidate's search FD, and so the best by search noise, recomputed without ema_grid: the online EMAs from
    ema/hl-H/ema-<point>, the post-hoc ones from the stored power-EMA snapshot of that σ_rel at that point (an exact
    profile). A candidate scored from another one's weights (or another point's) shows here."""
    from lcsc.data import load_digits_data
    from lcsc.metrics import reference_set
    from lcsc.metrics.spaces import feature_space
    from lcsc.models import load_model
    from lcsc.objectives import FDObjective

    digits = feature_space("digits")
    objective = FDObjective(load_model(run_dir / "last.safetensors"), digits, reference_set(load_digits_data(), digits),
                            num_samples=QUICK.samples, nfe=5, noise_seed=0)
    for point in (20, 30):
        files = {f"hl-{h}": run_dir / f"ema/hl-{h}/ema-{point:09d}.safetensors" for h in (2, 8)}
        files |= {f"sigma-{s:.3f}": run_dir / f"phema/sigma-{s:.3f}/phema-{point:09d}.safetensors" for s in (0.05, 0.1)}
        want = {name: objective.score(load_file(str(path))) for name, path in files.items()}
        got = {r["candidate"]: r["search_fd"] for r in grid["rows"] if r["point"] == point}
        assert got.keys() == want.keys()
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-9), (point, name)
        assert len(set(want.values())) == len(want)  # no ties: the best is well defined
        assert grid["best"][str(point)]["by_search"] == min(want, key=want.get)


def test_search_fd_equals_a_direct_fd_objective(run_dir, grid, one_thread):
    from lcsc.data import load_digits_data
    from lcsc.metrics import reference_set
    from lcsc.metrics.spaces import feature_space
    from lcsc.models import load_model
    from lcsc.objectives import FDObjective

    digits = feature_space("digits")
    objective = FDObjective(load_model(run_dir / "last.safetensors"), digits, reference_set(load_digits_data(), digits),
                            num_samples=QUICK.samples, nfe=5, noise_seed=0)
    state = load_file(str(run_dir / "ema/hl-8/ema-000000030.safetensors"))
    row = next(r for r in grid["rows"] if r["point"] == 30 and r["candidate"] == "hl-8")
    assert row["search_fd"] == pytest.approx(objective.score(state), rel=1e-9)
    assert row["held_out_fd"] != row["search_fd"]  # held-out noise is not the search noise


def test_bad_points(run_dir):
    with pytest.raises(ConfigError, match="point 25: .*hl-2 has no snapshot"):
        ema_grid(run_dir, [25], QUICK, [0.05], progress=False)
    with pytest.raises(ConfigError, match="cannot reconstruct"):
        ema_grid(run_dir, [30], QUICK, [0.28], progress=False)


def test_cli(run_dir, tmp_path, capsys, one_thread):
    out = tmp_path / "out"
    assert main(["analyze", "ema-grid", str(run_dir), "--quick", "--sigma-rels", "0.05,0.1", "--no-progress",
                 "-o", str(out)]) == 0
    data = json.loads((out / "ema-grid.json").read_text())
    assert data["points"] == [30] and {r["candidate"] for r in data["rows"]} == CANDIDATES
    md = (out / "ema-grid.md").read_text()
    assert all(f"| {c} |" in md for c in CANDIDATES) and "best by search noise" in md
    assert (out / "ema-grid.png").is_file() and (out / "ema-grid.config.json").is_file()
    assert "point 30: best by search noise" in capsys.readouterr().out
    assert main(["analyze", "ema-grid", str(run_dir), "--quick", "--points", "7", "-o", str(out)]) == 2
    err = problem_lines(capsys.readouterr().err)
    assert len(err) == 1 and "point 7" in err[0]
