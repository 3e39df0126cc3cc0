"""``lcsc analyze coefficients`` on anchored and gradient searches: the window part is plotted and measured, the
anchors' weights are reported by name, and together they are exactly the search's export (``result.best``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lcsc.analysis.coefficient_patterns import coefficient_patterns, load_search, patterns_markdown
from lcsc.cli.main import main
from lcsc.search import exported_coefficients
from lcsc.search.journal import Journal
from tests.search.exported_searches import ANCHORS, alg1_search, gradient_search

pytestmark = pytest.mark.filterwarnings("ignore:merged .* had negative entries")  # BatchNorm variances of random mixes

STEPS = [100, 200, 300, 400]


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """An anchored guarded Alg. 1 search, an anchored gradient search and a plain gradient search (same window)."""
    root = tmp_path_factory.mktemp("exports")
    alg1, res1, _, _ = alg1_search(root / "a")
    grad, res2 = gradient_search(root / "g")
    plain, res3 = gradient_search(root / "p", anchored=False)
    return [(alg1, res1), (grad, res2), (plain, res3)]


def test_the_cli_reports_the_exports_window_part_and_anchor_weights(searches, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", "coefficients", *(str(f) for f, _ in searches), "--ema-half-life", "150",
                 "-o", str(out)]) == 0
    data = json.loads((out / "coefficients.json").read_text())
    assert [s["name"] for s in data["searches"]] == ["search", "grad#1", "grad#2"]
    assert [s["kind"] for s in data["searches"]] == ["alg1-anchored", "gradient-anchored", "gradient"]
    for s, (folder, res) in zip(data["searches"], searches):
        full = s["coefficients"] + s["anchor_weights"]
        assert full == exported_coefficients(folder).coefficients[0].tolist() == res.best[0].tolist()  # exactly
        assert np.sum(full) == 1.0 and s["steps"] == STEPS
        assert s["export"] == res.best_name and s["best_score"] == res.best_score
        st = s["stats"]
        assert st["sum"] == float(np.sum(s["coefficients"])) and st["anchor_weight"] == float(np.sum(s["anchor_weights"]))
    alg1, grad, plain = data["searches"]
    assert alg1["anchors"] == grad["anchors"] == list(ANCHORS) and plain["anchors"] == []
    assert alg1["export"] == "ema-hl200" and alg1["chosen_by"] == "validation guard"
    assert alg1["stats"]["anchor_weights"] == dict(zip(ANCHORS, alg1["anchor_weights"]))
    assert grad["stats"]["anchor_weight"] != 0.0 and grad["export"] in ("last iterate", "averaged iterate")
    assert plain["stats"]["anchor_weight"] == 0.0 and plain["stats"]["anchor_weights"] == {}
    assert len(data["correlations"]) == 3  # one window for all three: window parts compared
    md = (out / "coefficients.md").read_text()
    assert "| search | alg1-anchored | ema-hl200 (validation guard) |" in md and "`ema:hl-150`" in md
    assert (out / "coefficients.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert f"anchors Σa {alg1['stats']['anchor_weight']:.3f}" in printed and "gradient-anchored" in printed


def _anchored_journal(folder, a, score=1.0):
    """A hand-made anchored journal over STEPS with anchors ema:hl-1, ema:hl-2 and one record ``a`` (length 6)."""
    j = Journal.create(folder / "journal.jsonl", {"version": 2, "steps": STEPS, "G": 1, "K": 6,
                                                 "hashes": [f"h{s}" for s in STEPS] + ["x", "y"],
                                                 "anchors": [{"name": "ema:hl-1", "sha256": "x"},
                                                             {"name": "ema:hl-2", "sha256": "y"}],
                                                 "objective": {"direction": "minimize"}})
    j.append({"index": 0, "candidate": 0, "generation": 0, "stage": "full", "name": None, "coefficients": [a],
              "score": score, "status": "ok", "samples": 1})
    return folder


def test_exact_window_statistics_beside_the_anchors(tmp_path):
    mixed = _anchored_journal(tmp_path / "mixed", [0.5, -0.2, 0.1, 0.0, 0.3, 0.3])
    alone = _anchored_journal(tmp_path / "alone", [0.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # the export is an anchor alone
    data = coefficient_patterns([mixed, alone])
    m, a = (s["stats"] for s in data["searches"])
    assert m["negative_mass"] == pytest.approx(0.2) and m["sum"] == pytest.approx(0.4)
    assert m["anchor_weight"] == pytest.approx(0.6) and m["anchor_weights"] == {"ema:hl-1": 0.3, "ema:hl-2": 0.3}
    assert m["participation"] == pytest.approx(0.16 / 0.30) and m["effective_window"] == 4  # 0.9 of 0.8 needs all
    assert (a["effective_window"], a["participation"], a["negative_mass"], a["anchor_weight"]) == (0, 0.0, 0.0, 1.0)
    assert data["correlations"] == [] and "a window part is constant" in " ".join(data["notes"])
    assert load_search(mixed).coefficients == [0.5, -0.2, 0.1, 0.0]
    assert "| mixed | alg1-anchored |" in patterns_markdown(data)
