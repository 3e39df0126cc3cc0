"""``exported_coefficients``: what a search folder exports, read from its journals alone, equals the search's own
``result.best`` bit for bit — Algorithm 1 anchored and guarded (and after a resume, and shrunk), gradient searches
with and without anchors — and a folder that is not a search is refused in one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lcsc.errors import ConfigError
from lcsc.merge import Coefficients
from lcsc.search import SearchConfig, exported_coefficients, run_search
from tests.search.exported_searches import ANCHORS, HALF_LIVES, alg1_search, gradient_search

pytestmark = pytest.mark.filterwarnings("ignore:merged .* had negative entries")  # BatchNorm variances of random mixes


@pytest.fixture(scope="module")
def alg1(tmp_path_factory):
    return alg1_search(tmp_path_factory.mktemp("alg1"))


@pytest.fixture(scope="module")
def grad(tmp_path_factory):
    return gradient_search(tmp_path_factory.mktemp("grad"))


def test_an_anchored_guarded_search_exports_the_guards_pick(alg1):
    out, res, merger, objective = alg1
    ex = exported_coefficients(out)
    reval = res.revalidation
    assert reval["picked"] == 2 and reval["candidates"][2] == res.best_index == 3  # not the search-noise best
    assert not np.array_equal(res.best, res.search_best)
    assert np.array_equal(ex.coefficients, res.best) and ex.coefficients.shape == (1, 6)
    assert (ex.kind, ex.label, ex.anchored, ex.K_window) == ("alg1", "alg1-anchored", True, 4)
    assert (ex.name, ex.index, ex.score, ex.chosen_by) == ("ema-hl200", 3, res.best_score, "validation guard")
    assert ex.validation_score == reval["scores"][2]
    assert ex.steps == (100, 200, 300, 400) and ex.anchor_names == list(ANCHORS)
    assert np.array_equal(np.concatenate([ex.window, ex.anchor_part], axis=1), ex.coefficients)
    assert ex.coefficients.sum() == 1.0
    resumed = run_search(merger, objective, SearchConfig(evals=30, seed=1, revalidate=3, half_lives=HALF_LIVES), out,
                         resume=True, progress=False)
    assert np.array_equal(resumed.best, ex.coefficients) and resumed.best_score == ex.score


def test_without_the_guard_the_search_noise_best_and_a_shrink_as_journalled(tmp_path):
    out, plain, _, _ = alg1_search(tmp_path / "plain", revalidate=0)
    ex = exported_coefficients(out)
    assert np.array_equal(ex.coefficients, plain.best) and ex.chosen_by == "search noise"
    assert ex.score == plain.best_score and ex.validation_score is None
    out, shrunk, _, _ = alg1_search(tmp_path / "shrunk", revalidate=0, shrink=0.5)
    ex = exported_coefficients(out)
    assert shrunk.shrink["exported"] == "the shrunk point" and not np.array_equal(shrunk.best, plain.best)
    assert np.array_equal(ex.coefficients, shrunk.best) and ex.name == shrunk.best_name
    assert ex.score == shrunk.best_score and ex.chosen_by == "search noise then shrinkage"


@pytest.mark.parametrize("anchored", [True, False])
def test_a_gradient_search_exports_its_guards_pick(grad, tmp_path, anchored):
    out, res = grad if anchored else gradient_search(tmp_path, anchored=False)
    ex = exported_coefficients(out)
    guard = res.gradient["guard"]
    assert np.array_equal(ex.coefficients, res.best) and ex.name == res.best_name == guard["picked"]
    assert ex.score == res.best_score == guard["scores"][guard["names"].index(guard["picked"])]
    assert (ex.kind, ex.index, ex.chosen_by) == ("gradient", -1, "gradient guard")
    assert ex.label == ("gradient-anchored" if anchored else "gradient")
    assert ex.anchor_names == (list(ANCHORS) if anchored else [])
    third = guard["names"][2]
    assert third == ("anchor ema:hl-150" if anchored else f"start ({res.best_initial_name})")
    assert ex.coefficients.sum() == 1.0


def test_the_export_as_a_coefficient_file_records_the_anchors(alg1, tmp_path, capsys):
    from lcsc.cli.export_coefficients import main

    out, res, _, _ = alg1
    assert main([str(out), "-o", str(tmp_path / "c.json")]) == 0
    coeffs = Coefficients.load(tmp_path / "c.json")
    assert coeffs.steps == (100, 200, 300, 400) and coeffs.anchor_names == list(ANCHORS)
    assert np.array_equal(coeffs.values, res.best)
    assert [a.get("spec") for a in coeffs.anchors] == list(ANCHORS)  # keyword names are their own specs
    assert "alg1-anchored export ema-hl200 (validation guard)" in capsys.readouterr().out


def test_a_folder_that_is_not_a_search_is_refused(tmp_path, grad, capsys):
    from lcsc.cli.export_coefficients import main

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty: not an lcsc search folder \(no journal.jsonl") as err:
        exported_coefficients(tmp_path / "empty")
    assert len(str(err.value).splitlines()) == 1
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "gradient.jsonl").write_bytes((grad[0] / "gradient.jsonl").read_bytes())
    with pytest.raises(ConfigError, match="lone: not an lcsc search folder .a gradient journal without"):
        exported_coefficients(lone)
    assert main([str(tmp_path / "empty"), "-o", str(tmp_path / "c.json")]) == 2
    assert "empty: not an lcsc search folder" in capsys.readouterr().err and not (tmp_path / "c.json").exists()


def test_a_gradient_search_stopped_before_its_guard_is_refused(grad, tmp_path):
    lines = (grad[0] / "gradient.jsonl").read_text().splitlines(keepends=True)
    assert [json.loads(line)["type"] for line in lines[-2:]] == ["step", "validation"]
    for name, kept, why in (("cut", lines[:-1], "the search stopped before its guard"),
                            ("went-on", lines[:-2] + lines[-1:], "its validation records are for other finalists")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "journal.jsonl").write_bytes((grad[0] / "journal.jsonl").read_bytes())
        (folder / "gradient.jsonl").write_text("".join(kept))
        with pytest.raises(ConfigError, match=f"{name}/gradient.jsonl: no validation record .*: {why}"):
            exported_coefficients(folder)


def test_a_journal_file_names_its_folder(alg1):
    out = alg1[0]
    assert exported_coefficients(out / "journal.jsonl").folder == Path(out)
