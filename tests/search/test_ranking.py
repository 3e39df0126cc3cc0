"""The one rule for "best": full-count scores only, signed by the direction, the earliest on ties."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lcsc.errors import ConfigError
from lcsc.objectives import direction_sign
from lcsc.search.ranking import FULL, RACE, best_full, best_full_record, ranked_full


def _cands(*scores):
    return [SimpleNamespace(index=i, scores=s) for i, s in enumerate(scores)]


def test_direction_sign():
    assert direction_sign("minimize") == 1.0 and direction_sign("maximize") == -1.0
    with pytest.raises(ConfigError, match="direction"):
        direction_sign("max")


def test_best_full_ignores_racing_and_failed_scores_and_takes_the_first_of_ties():
    cands = _cands({RACE: 0.1}, {FULL: 3.0}, {FULL: None}, {FULL: 2.0}, {FULL: 2.0}, {FULL: 5.0})
    assert best_full(cands, "minimize").index == 3
    assert best_full(cands, "maximize").index == 5
    assert [c.index for c in ranked_full(cands, "minimize")] == [3, 4, 1, 5]
    assert best_full(_cands({RACE: 1.0}), "minimize") is None


def test_best_full_record():
    recs = [{"index": 0, "stage": RACE, "status": "ok", "score": 0.0},
            {"index": 1, "stage": FULL, "status": "failed", "score": None},
            {"index": 2, "stage": FULL, "status": "ok", "score": 4.0},
            {"index": 3, "status": "ok", "score": 1.0},  # a version-1 record: full count
            {"index": 4, "stage": FULL, "status": "cached", "score": 1.0}]
    assert best_full_record(recs, "minimize")["index"] == 3
    assert best_full_record(recs, "maximize")["index"] == 2
    assert best_full_record(recs[:2], "minimize") is None
