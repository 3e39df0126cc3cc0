"""``lcsc analyze landscape``: the plane through three coefficient vectors, scored on a grid (LCSC Fig. 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.analysis.landscape import (
    compute_landscape,
    default_points,
    grid_axis,
    landscape_markdown,
    parse_points,
    plane,
    plot_landscape,
    point_anchors,
    resolve_point,
)
from lcsc.errors import CoefficientError, ConfigError
from lcsc.merge import Coefficients
from lcsc.search import Journal, ema_coefficients
from lcsc.search.space import half_life_to_rate

STEPS = [10, 20, 30, 40, 50]


class VectorMerger:
    """Stands in for StackMerger: the 'state' of coefficients a is {'a': a} (float64, so scores are exact)."""

    G, steps = 1, STEPS

    def merge_many(self, A):
        return [{"a": torch.as_tensor(np.asarray(row).reshape(-1), dtype=torch.float64)} for row in A]


class Quadratic:
    """score(a) = |a − target|² + 1: the landscape's minimum on the plane is where target projects onto it."""

    name = "quad"

    def __init__(self, target):
        self.target = np.asarray(target, dtype=np.float64)

    def score(self, state):
        return float(((state["a"].numpy() - self.target) ** 2).sum() + 1.0)

    def score_many(self, states):
        return [self.score(s) for s in states]


def test_grid_axis_holds_the_anchors_exactly():
    axis = grid_axis(-0.6, 1.4, 11)
    assert len(axis) == 11 and 0.0 in axis.tolist() and 1.0 in axis.tolist()
    np.testing.assert_allclose(np.diff(axis), 0.2)
    wide = grid_axis(-0.5, 1.5, 11)  # 0 and 1 fall between grid points: inserted
    assert len(wide) == 13 and {0.0, 1.0} <= set(wide.tolist()) and wide[0] == -0.5 and wide[-1] == 1.5
    assert grid_axis(2.0, 3.0, 3).tolist() == [2.0, 2.5, 3.0]
    with pytest.raises(ConfigError, match="at least 2"):
        grid_axis(0.0, 1.0, 1)
    with pytest.raises(ConfigError, match="LO < HI"):
        grid_axis(1.0, 0.0, 5)


def test_plane_sums_to_one_and_passes_through_the_anchors():
    A = np.array([np.eye(5)[-1], np.full(5, 0.2), ema_coefficients(5, 0.9, 10)])
    u = grid_axis(-0.6, 1.4, 11)
    for v in u:
        np.testing.assert_allclose(plane(A, u, v).sum(axis=1), 1.0, atol=1e-12)
    assert np.array_equal(plane(A, np.array([0.0, 1.0]), 0.0), A[:2])
    assert np.array_equal(plane(A, np.array([0.0]), 1.0)[0], A[2])


def test_points_are_parsed_and_resolved(tmp_path: Path):
    assert parse_points("lcsc=a.json,ema=ema:40,last") == [("lcsc", "a.json"), ("ema", "ema:40"), ("last", "last")]
    with pytest.raises(ConfigError, match="three anchors"):
        parse_points("last,uniform")
    assert np.array_equal(resolve_point("last", STEPS), [0, 0, 0, 0, 1])
    np.testing.assert_allclose(resolve_point("uniform", STEPS), 0.2)
    np.testing.assert_allclose(resolve_point("ema:20", STEPS), ema_coefficients(5, half_life_to_rate(20), 10))
    assert [s for _, s in default_points(STEPS)] == ["last", "uniform", "ema:10"]  # a quarter of 50, in intervals
    good = Coefficients(tuple(STEPS), np.array([0.1, 0.2, 0.3, 0.2, 0.2])).save(tmp_path / "good.json")
    np.testing.assert_allclose(resolve_point(str(good), STEPS), [0.1, 0.2, 0.3, 0.2, 0.2])
    bad = Coefficients((1, 2, 3, 4, 5), np.full(5, 0.2)).save(tmp_path / "bad.json")
    with pytest.raises(CoefficientError, match="bad.json: steps do not match"):
        resolve_point(str(bad), STEPS)
    for spec in ("ema:x", "ema:0", str(tmp_path / "missing.json")):
        with pytest.raises(ConfigError):
            resolve_point(spec, STEPS)


def test_a_search_folder_gives_its_best_full_count_coefficients(tmp_path: Path):
    journal = Journal.create(tmp_path / "s" / "journal.jsonl", {"steps": STEPS, "G": 1,
                                                               "objective": {"direction": "minimize"}})
    rows = {0: ([0.2] * 5, 3.0, "full"), 1: ([0, 0, 0, 0.5, 0.5], 2.0, "full"), 2: ([0, 0, 0, 0, 1], 1.0, "race")}
    for i, (a, score, stage) in rows.items():
        journal.append({"index": i, "coefficients": [a], "score": score, "stage": stage, "status": "ok"})
    assert resolve_point(str(tmp_path / "s"), STEPS).tolist() == [0, 0, 0, 0.5, 0.5]
    with pytest.raises(ConfigError, match="do not match"):
        resolve_point(str(tmp_path / "s"), [1, 2, 3, 4, 5])


class AnchoredVectorMerger(VectorMerger):
    """A stack with one anchor row after the window (K = 6)."""

    anchors = [{"name": "ema:hl-10", "sha256": "x"}]


def test_an_anchored_search_point_weighs_its_anchor_row(tmp_path: Path):
    folder = tmp_path / "anchored"
    journal = Journal.create(folder / "journal.jsonl", {"steps": STEPS, "G": 1, "K": 6,
                                                      "anchors": [{"name": "ema:hl-10", "sha256": "x"}],
                                                      "objective": {"direction": "minimize"}})
    best = [0.1, 0.1, 0.0, 0.1, 0.2, 0.5]
    for i, (a, score) in enumerate([([0.0] * 5 + [1.0], 2.0), (best, 1.0)]):
        journal.append({"index": i, "coefficients": [a], "score": score, "stage": "full", "status": "ok"})
    assert resolve_point(str(folder), STEPS, ["ema:hl-10"]).tolist() == best
    assert resolve_point("last", STEPS, ["ema:hl-10"]).tolist() == [0, 0, 0, 0, 1, 0]
    with pytest.raises(ConfigError, match=r"anchored: its anchors \['ema:hl-10'\] are not rows"):
        resolve_point(str(folder), STEPS)
    points = [("lcsc", str(folder)), ("last", "last"), ("uniform", "uniform")]
    assert point_anchors(points) == [({"name": "ema:hl-10", "sha256": "x", "spec": "ema:hl-10"}, str(folder))]
    target = np.array(best)
    land = compute_landscape(AnchoredVectorMerger(), Quadratic(target), points, size=3, lo=0.0, hi=1.0,
                             progress=False)
    assert land.anchors[0].coefficients.tolist() == best and land.info["anchor_rows"] == ["ema:hl-10"]
    assert land.anchors[0].direct_score == 1.0 and land.minimum == {"u": 0.0, "v": 0.0, "score": 1.0}
    assert land.anchors[2].coefficients.tolist() == [0.2] * 5 + [0.0]


def test_landscape_finds_the_projected_minimum_and_equals_direct_scores_at_the_anchors():
    last, uniform = np.eye(5)[-1], np.full(5, 0.2)
    ema = ema_coefficients(5, half_life_to_rate(10), 10)
    target = 0.6 * last + 0.2 * uniform + 0.2 * ema  # on the plane at (u, v) = (0.2, 0.2): a grid point
    land = compute_landscape(VectorMerger(), Quadratic(target), [("last", "last"), ("uniform", "uniform"),
                                                                ("ema", "ema:10")], progress=False)
    assert land.values.shape == (11, 11)
    m = land.minimum
    assert (m["u"], m["v"]) == pytest.approx((0.2, 0.2)) and m["score"] == pytest.approx(1.0, abs=1e-12)
    for a, uv in zip(land.anchors, [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]):
        assert a.uv == uv and a.score == a.direct_score  # exact: the grid holds the anchors themselves
        assert a.direct_score == pytest.approx(1.0 + ((a.coefficients - target) ** 2).sum(), rel=1e-12)
    data = json.loads(json.dumps(land.to_json()))
    i0, i1 = data["u"].index(0.0), data["u"].index(1.0)
    assert data["values"][i0][i0] == data["anchors"][0]["score"] and data["values"][i0][i1] == land.anchors[1].score
    assert data["values"][i1][i0] == land.anchors[2].score and data["minimum"] == m
    text = landscape_markdown(land)
    assert "inside the anchor triangle" in text and "nearest to last" in text
    plot_landscape(land)


def test_landscape_refuses_grouped_mergers():
    merger = VectorMerger()
    merger.G = 2
    with pytest.raises(ConfigError, match="single coefficient group"):
        compute_landscape(merger, Quadratic(np.zeros(5)), default_points(STEPS), progress=False)


@pytest.fixture(scope="module")
def tiny_window(tmp_path_factory) -> Path:
    from lcsc.cli.main import main
    from lcsc.metrics.spaces import feature_space

    out = tmp_path_factory.mktemp("landscape") / "run"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "dm", "--iterations", "20", "--batch-size", "16", "--channels", "8", "--record-window",
                     "20", "--record-interval", "5", "--sample-count", "0", "-o", str(out)]) == 0
        feature_space("digits")  # trained once per test session (cached): the objective's setup, not the test's
    finally:
        torch.set_num_threads(old)
    return out / "windows" / "20"


def test_cli_landscape_on_a_tiny_run(tiny_window: Path, tmp_path: Path, one_thread):
    from lcsc.cli.main import main

    out = tmp_path / "land"
    assert main(["analyze", "landscape", str(tiny_window), "--quick", "--nfe", "2", "-o", str(out)]) == 0
    data = json.loads((out / "landscape.json").read_text())
    assert {"landscape.json", "landscape.png", "landscape.md", "landscape.config.json"} <= {p.name for p in out.iterdir()}
    assert data["u"] == pytest.approx([-0.6, 0.0, 0.4, 1.0, 1.4])  # 3 points plus the inserted 0 and 1
    assert [a["name"] for a in data["anchors"]] == ["last", "uniform", "ema"]
    for a in data["anchors"]:
        # a row merged at once vs. one vector alone: float32 sums in another order, FD equal to ~1e-7
        assert a["score"] == pytest.approx(a["direct_score"], rel=1e-5)
    assert data["anchors"][0]["score"] == data["anchors"][0]["direct_score"]  # one-hot: bitwise the checkpoint
    finite = [v for row in data["values"] for v in row if v is not None]
    assert data["minimum"]["score"] == min(finite) and len(finite) == len(data["u"]) ** 2


def test_cli_landscape_bad_input(tiny_window: Path, tmp_path: Path, capsys):
    from lcsc.cli.main import main

    bad = Coefficients((1, 2, 3, 4), np.full(4, 0.25)).save(tmp_path / "other.json")
    assert main(["analyze", "landscape", str(tiny_window), "--points", f"x={bad},last,uniform",
                 "-o", str(tmp_path / "o")]) == 2
    assert "other.json" in capsys.readouterr().err
    assert main(["analyze", "landscape", str(tiny_window), "--grid", "1", "-o", str(tmp_path / "o")]) == 2
    assert "--grid 1" in capsys.readouterr().err


def test_cli_landscape_through_an_anchored_search(tiny_window: Path, tmp_path: Path, one_thread):
    """The search's EMA anchor is rebuilt from its spec as a row after the window; the plane passes through the
    search's export exactly, the other points put 0 on that row."""
    from lcsc.checkpoints import CheckpointStack
    from lcsc.checkpoints.anchor_specs import resolve_anchors
    from lcsc.cli.main import main
    from lcsc.merge import StackMerger
    from lcsc.objectives import builtin_objective
    from lcsc.search import SearchConfig, exported_coefficients, run_search

    stack = CheckpointStack.open(tiny_window, cache=False, progress=False)
    merger = StackMerger(stack.with_anchors(resolve_anchors(["ema:hl-2"], tiny_window, stack)))
    objective = builtin_objective(tiny_window, "fd", num_samples=32, nfe=1, progress=False)
    search = tmp_path / "search"
    res = run_search(merger, objective, SearchConfig(evals=8, revalidate=2), search, progress=False)
    ex = exported_coefficients(search)
    assert ex.anchor_names == ["ema:hl-2"] and np.array_equal(ex.coefficients, res.best)
    out = tmp_path / "land"
    assert main(["analyze", "landscape", str(tiny_window), "--points", f"lcsc={search},last=last,uniform=uniform",
                 "--quick", "-o", str(out)]) == 0
    data = json.loads((out / "landscape.json").read_text())
    assert data["anchor_rows"] == ["ema:hl-2"] and data["nfe"] == 1  # the search's NFE
    lcsc, last, uniform = data["anchors"]
    assert lcsc["coefficients"] == res.best[0].tolist() and len(lcsc["coefficients"]) == 5
    assert last["coefficients"] == [0.0, 0.0, 0.0, 1.0, 0.0] and uniform["coefficients"] == [0.25] * 4 + [0.0]
    assert lcsc["score"] == pytest.approx(lcsc["direct_score"], rel=1e-5)
