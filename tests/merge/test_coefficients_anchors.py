"""Coefficient files with anchors: the format, and check_rows against a stack's window steps and anchors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.errors import CoefficientError
from lcsc.merge import Coefficients, merge, merge_coefficients
from tests.conftest import make_states

STEPS = [100, 200, 300, 400, 500]


@pytest.fixture
def anchored(ckpt_dir: Path) -> CheckpointStack:
    a, b = make_states(2, seed=21)
    return CheckpointStack.open(ckpt_dir, cache=False, progress=False, anchors={"ema:a": a, "ema:b": b})


def test_no_anchor_files_keep_their_exact_format() -> None:
    c = Coefficients((1, 2), np.array([0.25, 0.75]))
    assert c.to_json() == {"steps": [1, 2], "coefficients": [0.25, 0.75]} and c.anchors == ()
    g = Coefficients((1, 2), np.array([[0.5, 0.5], [1.5, -0.5]]), {"x": ("a*",), "y": ("*",)})
    assert list(g.to_json()) == ["steps", "groups", "coefficients"]


def test_anchors_round_trip_and_shape(tmp_path: Path) -> None:
    anchors = ({"name": "ema:hl-5", "sha256": "ab" * 32, "spec": "ema:hl-5", "kind": "ema", "step": 5,
                "ema_rate": 0.87},)
    c = Coefficients((1, 2), np.array([0.25, 0.5, 0.25]), anchors=anchors)
    obj = c.to_json()
    assert list(obj) == ["steps", "anchors", "coefficients"] and obj["anchors"] == list(anchors)
    back = Coefficients.load(c.save(tmp_path / "c.json"))
    assert back.anchors == anchors and np.array_equal(back.values, c.values)
    assert Coefficients.load(c.save(tmp_path / "r.json"), renormalize=True).anchors == anchors
    with pytest.raises(CoefficientError, match=r"expected \(1, 3\) for 2 steps \+ 1 anchors"):
        Coefficients((1, 2), np.array([0.5, 0.5]), anchors=anchors)
    for bad, match in ((None, "must be a list"), (["x"], "string 'name' and 'sha256'"), ([{"name": "a"}], "string 'name' and 'sha256'"),
                       ([{"name": "a", "sha256": "0"}] * 2, "appears twice"),
                       ([{"name": "a", "sha256": "0", "step": "5"}], "field 'step'")):
        (tmp_path / "bad.json").write_text(json.dumps({"steps": [1], "anchors": bad, "coefficients": [0.5] * 2}))
        with pytest.raises(CoefficientError, match=match) as info:
            Coefficients.load(tmp_path / "bad.json")
        assert str(tmp_path / "bad.json") in str(info.value)


def test_merge_coefficients_checks_rows(anchored: CheckpointStack, ckpt_dir: Path) -> None:
    records = tuple(a.to_json() for a in anchored.anchors)
    values = np.array([0.1, 0.2, -0.3, 0.4, 0.1, 0.25, 0.25])
    c = Coefficients(tuple(STEPS), values, anchors=records)
    got = merge_coefficients(anchored, c)
    want = merge(anchored, values)
    assert all(torch.equal(got[k], want[k]) for k in want)
    plain = CheckpointStack.open(ckpt_dir, cache=False, progress=False)
    with pytest.raises(CoefficientError, match=r"F names anchors \['ema:a', 'ema:b'\] but the stack has none; pass "
                                               r"--anchor ema:a --anchor ema:b"):
        c.check_rows(plain, "F")
    with pytest.raises(CoefficientError, match=r"F names no anchors but the stack has anchors \['ema:a', 'ema:b'\]"):
        Coefficients(tuple(STEPS), values[:5]).check_rows(anchored, "F")
    swapped = Coefficients(tuple(STEPS), values, anchors=records[::-1])
    with pytest.raises(CoefficientError, match="F: anchor 1 is 'ema:b' but the stack's anchor 1 is 'ema:a'"):
        swapped.check_rows(anchored, "F")
    changed = (records[0], {**records[1], "sha256": "f" * 64})
    with pytest.raises(CoefficientError, match=rf"anchor 'ema:b' in F has sha256 ffffffffffff… but the stack's has "
                                               rf"{anchored.anchors[1].sha256[:12]}…"):
        Coefficients(tuple(STEPS), values, anchors=changed).check_rows(anchored, "F")
    with pytest.raises(CoefficientError, match=r"F names anchors \['ema:a'\] but the stack has anchors"):
        Coefficients(tuple(STEPS), values[:6], anchors=records[:1]).check_rows(anchored, "F")
    with pytest.raises(CoefficientError, match="steps do not match"):
        Coefficients(tuple(STEPS[:4]), values[1:], anchors=records).check_rows(anchored, "F")
    with pytest.raises(CoefficientError, match=r"K=7 rows \(5 checkpoints \+ 2 anchors\)"):
        merge(anchored, values[:5])
