"""``lcsc analyze coefficients``: exact statistics on hand-made journals, and the CLI on a tiny real search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lcsc.analysis.coefficient_patterns import (
    coefficient_patterns,
    effective_window,
    ema_profile,
    ema_star_profile,
    load_search,
    negative_mass,
    participation,
    pearson,
)
from lcsc.cli.main import main
from lcsc.errors import ConfigError
from lcsc.search import ema_coefficients, half_life_to_rate
from lcsc.search.journal import Journal
from tests.output import problem_lines

A = [-0.1, 0.2, -0.1, 1.0]


def _journal(folder, steps, records, hashes=None):
    """A journal of (a, score, status[, stage]) records over ``steps`` (checkpoint hashes h<step> unless given)."""
    j = Journal.create(folder / "journal.jsonl", {"version": 2, "steps": steps,
                                                 "hashes": hashes or [f"h{s}" for s in steps],
                                                 "G": 1, "K": len(steps), "objective": {"direction": "minimize"}})
    for i, (a, score, status, *stage) in enumerate(records):
        j.append({"index": i, "candidate": i, "generation": 0, "stage": stage[0] if stage else "full", "name": None,
                  "coefficients": [a], "score": score, "status": status, "samples": 10})
    return folder


def _pearson_by_hand(a, b) -> float:
    ca, cb = np.subtract(a, np.mean(a)), np.subtract(b, np.mean(b))
    return float(ca @ cb / np.sqrt((ca @ ca) * (cb @ cb)))


@pytest.fixture
def search(tmp_path):
    uniform = [0.25] * 4
    return _journal(tmp_path / "s1", [10, 20, 30, 40],
                    [(uniform, 2.0, "ok"), (A, 1.5, "ok"), ([0.0, 0.0, 0.0, 1.0], None, "failed"),
                     ([0.1, 0.2, 0.3, 0.4], 1.7, "ok")])


def test_exact_statistics():
    assert negative_mass(A) == pytest.approx(0.2)
    assert negative_mass([0.5, 0.5]) == 0.0
    assert effective_window(A) == 3  # |a| from the end: 1.0, 1.1, 1.3 of 1.4 → 0.93 ≥ 0.9 at 3
    assert effective_window(A, 0.7) == 1
    assert effective_window([0.25] * 4, 1.0) == 4
    assert participation(A) == pytest.approx(1 / 1.06)
    assert participation([0.25] * 4) == pytest.approx(4.0)
    assert pearson(A, A) == pytest.approx(1.0)
    assert pearson(A, [-v for v in A]) == pytest.approx(-1.0)


def test_profiles():
    steps = [8 * k for k in range(1, 101)]
    assert np.array_equal(ema_profile(steps, 80), ema_coefficients(100, half_life_to_rate(80), 8))
    assert np.array_equal(ema_star_profile(steps, "hl-80"), ema_profile(steps, 80))
    p = ema_star_profile(steps, "sigma-0.1")
    assert p.sum() == pytest.approx(1.0) and (p >= 0).all() and np.argmax(p) == 99
    with pytest.raises(ConfigError, match="neither"):
        ema_star_profile(steps, "foo")


B = [1.0, -0.1, 0.2, -0.1]  # A reversed: Pearson(A, B) = −0.49 / 0.81 (both centred on 0.25)
C = [0.4, 0.3, 0.2, 0.1]  # Pearson(A, C) = −0.15 / √(0.81 · 0.05) = −√20 / 6


def test_best_curve_and_correlation(search, tmp_path):
    s = load_search(search)
    assert s.coefficients == A and s.best_score == 1.5 and s.best_index == 1
    assert s.curve == [(1, 2.0), (2, 1.5), (3, 1.5), (4, 1.5)]
    # planted bests: each after a worse record that equals A, next to a better racing-only score that must not count
    planted = _journal(tmp_path / "planted", [10, 20, 30, 40],
                       [(A, 3.0, "ok"), (B, 1.0, "ok"), ([0.25] * 4, 2.0, "ok"), (A, 0.5, "ok", "race")])
    refiled = _journal(tmp_path / "refiled", [10, 20, 30, 40], [(A, 2.0, "ok"), (C, 1.0, "ok")],
                       hashes=["x1", "x2", "x3", "x4"])  # the same steps, other checkpoint files
    other = _journal(tmp_path / "other", [5, 10, 15, 20], [(A, 1.0, "ok")])
    report = {"ema_star": {"s1": {"40": "hl-10"}}}
    data = coefficient_patterns([search, planted, refiled, other], [10.0], report)
    assert [(c["a"], c["b"]) for c in data["correlations"]] == [("s1", "planted"), ("s1", "refiled"),
                                                                ("planted", "refiled")]
    assert [c["pearson"] for c in data["correlations"]] == [pytest.approx(-49 / 81), pytest.approx(-np.sqrt(20) / 6),
                                                            pytest.approx(np.sqrt(20) / 6)]
    assert _pearson_by_hand(A, B) == pytest.approx(-49 / 81) and _pearson_by_hand(A, C) == pytest.approx(-np.sqrt(20) / 6)
    assert [c["same_checkpoints"] for c in data["correlations"]] == [True, False, False]
    assert sum("different windows" in n for n in data["notes"]) == 3
    first = data["searches"][0]["stats"]
    assert first["negative_mass"] == pytest.approx(0.2) and first["effective_window"] == 3
    assert first["effective_window_steps"] == 30
    assert set(first["profiles"]) == {"ema-hl10", "ema*=hl-10"}
    assert "no EMA* choice" in " ".join(data["notes"])  # "planted", "refiled" and "other" have none


def test_missing_journal(tmp_path):
    with pytest.raises(ConfigError, match="no journal.jsonl"):
        load_search(tmp_path)


@pytest.fixture(scope="module")
def real_search(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("run")
        assert main(["train", "dm", "--iterations", "30", "--batch-size", "32", "--channels", "8", "--record-window",
                     "20", "--record-interval", "5", "--sample-count", "0", "-o", str(out)]) == 0
        search = out / "search"
        assert main(["search", str(out / "windows/30"), "--evals", "6", "--generation-size", "3", "--samples", "32",
                     "--nfe", "1", "-o", str(search)]) == 0
    finally:
        torch.set_num_threads(threads)
    return search


def _planted_twin(search, folder, coefficients):
    """A search over the same checkpoints whose only (and so best) record is ``coefficients``."""
    header = Journal.load(search / "journal.jsonl").header
    j = Journal.create(folder / "journal.jsonl", header)
    j.append({"index": 0, "candidate": 0, "generation": 0, "stage": "full", "name": None, "samples": 10,
              "coefficients": [list(coefficients)] * header["G"], "score": 1.0, "status": "ok"})
    return folder


def test_cli_on_a_tiny_search(real_search, tmp_path, capsys):
    best = load_search(real_search).coefficients
    planted = best[::-1]  # the search's best pattern reversed in time
    expected = _pearson_by_hand(best, planted)
    assert abs(expected - 1.0) > 0.1  # the two can be told apart
    twin = _planted_twin(real_search, tmp_path / "twin", planted)
    out = tmp_path / "out"
    assert main(["analyze", "coefficients", str(real_search), str(twin), "--ema-half-life", "10", "-o",
                 str(out)]) == 0
    data = json.loads((out / "coefficients.json").read_text())
    assert {p.name for p in out.iterdir()} >= {"coefficients.json", "coefficients.png", "coefficients.md",
                                                "coefficients.config.json"}
    s = data["searches"][0]
    assert s["steps"] == [15, 20, 25, 30] and sum(s["coefficients"]) == pytest.approx(1.0)
    assert len(s["curve"]) >= 6 and s["curve"][-1][1] == s["best_score"]
    assert data["searches"][1]["coefficients"] == pytest.approx(planted, abs=0)
    assert data["correlations"][0]["pearson"] == pytest.approx(expected)
    assert data["correlations"][0]["same_checkpoints"]
    assert f"pearson(search, twin) = {expected:.3f}" in capsys.readouterr().out
    assert main(["analyze", "coefficients", str(tmp_path / "nothing"), "-o", str(out)]) == 2
    err = problem_lines(capsys.readouterr().err)
    assert len(err) == 1 and "no journal.jsonl" in err[0]
