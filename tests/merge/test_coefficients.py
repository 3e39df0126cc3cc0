from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lcsc.errors import CoefficientError
from lcsc.merge import Coefficients


def test_round_trip_plain_and_groups(tmp_path: Path) -> None:
    plain = Coefficients((10, 20, 30), np.array([0.2, -0.3, 1.1]))
    plain.save(tmp_path / "a.json")
    again = Coefficients.load(tmp_path / "a.json")
    assert again.steps == plain.steps and np.allclose(again.values, plain.values)
    assert json.loads((tmp_path / "a.json").read_text()) == {
        "steps": [10, 20, 30],
        "coefficients": [0.2, -0.3, 1.1],
    }
    grouped = Coefficients((1, 2), np.array([[0.5, 0.5], [2.0, -1.0]]), {"enc": ("enc.*",), "rest": ("*",)})
    grouped.save(tmp_path / "g.json")
    back = Coefficients.load(tmp_path / "g.json")
    assert back.groups == grouped.groups and np.allclose(back.values, grouped.values)


def test_sum_must_be_one_unless_renormalized(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"steps": [1, 2], "coefficients": [1.0, 1.0]}))
    with pytest.raises(CoefficientError, match=r"c\.json.*sum to 2"):
        Coefficients.load(tmp_path / "c.json")
    assert np.allclose(Coefficients.load(tmp_path / "c.json", renormalize=True).values, [[0.5, 0.5]])
    (tmp_path / "z.json").write_text(json.dumps({"steps": [1, 2], "coefficients": [1.0, -1.0]}))
    with pytest.raises(CoefficientError, match="cannot renormalise"):
        Coefficients.load(tmp_path / "z.json", renormalize=True)


def test_group_sums_checked_per_group(tmp_path: Path) -> None:
    obj = {
        "steps": [1, 2],
        "groups": {"a": ["a.*"], "b": ["*"]},
        "coefficients": {"a": [0.5, 0.5], "b": [0.5, 0.6]},
    }
    (tmp_path / "g.json").write_text(json.dumps(obj))
    with pytest.raises(CoefficientError, match="group 'b'"):
        Coefficients.load(tmp_path / "g.json")


@pytest.mark.parametrize(
    "obj,match",
    [
        ({"steps": [1, 2, 3], "coefficients": [0.5, 0.5]}, "shape"),
        ({"steps": [1, 2], "coefficients": [0.5, "x"]}, "list of numbers"),
        ({"steps": "1,2", "coefficients": [0.5, 0.5]}, "list of integers"),
        ({"coefficients": [1.0]}, "'steps' and 'coefficients'"),
        ({"steps": [1, 1], "coefficients": [0.5, 0.5]}, "duplicates"),
        ({"steps": [1], "groups": {"a": ["*"]}, "coefficients": {"b": [1.0]}}, "same names"),
    ],
)
def test_bad_files(tmp_path: Path, obj, match: str) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(obj))
    with pytest.raises(CoefficientError, match=match):
        Coefficients.load(tmp_path / "bad.json")


def test_not_json_and_missing(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(CoefficientError, match="not valid JSON"):
        Coefficients.load(tmp_path / "x.json")
    with pytest.raises(CoefficientError, match="no such coefficient file"):
        Coefficients.load(tmp_path / "missing.json")


def test_steps_must_match() -> None:
    c = Coefficients((1, 2), np.array([0.5, 0.5]))
    c.check_steps([1, 2])
    with pytest.raises(CoefficientError, match="only in checkpoints: \\[3\\]"):
        c.check_steps([1, 3])
