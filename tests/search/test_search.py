from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.errors import ConfigError
from lcsc.merge import Coefficients, StackMerger, merge
from lcsc.objectives import FunctionObjective, SeededObjective, ValidationLossObjective
from lcsc.search import (
    Journal,
    SearchConfig,
    ema_coefficients,
    half_life_to_rate,
    run_search,
    write_search_outputs,
)
from lcsc.search.journal import TIMING_FIELDS
from tests.search.trajectory import regression_data, regression_student


def _objective(n: int, seed: int) -> ValidationLossObjective:
    return ValidationLossObjective(
        regression_student(), torch.nn.functional.mse_loss, regression_data(n, seed)
    )


@pytest.fixture
def merger(regression_ckpts: Path) -> StackMerger:
    return StackMerger(CheckpointStack.open(regression_ckpts, progress=False))


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def test_lcsc_beats_checkpoints_uniform_and_ema_on_held_out(merger: StackMerger, tmp_path: Path) -> None:
    budget = 120
    search_obj, held_out = _objective(8000, 2), _objective(20000, 3)
    result = run_search(merger, search_obj, SearchConfig(evals=budget, seed=0), tmp_path, progress=False)
    stack, K = merger.stack, merger.K
    # baselines selected on the search split with the same budget, reported on the held-out split
    best_single = min(range(K), key=lambda k: search_obj.score(stack.checkpoint(k)))
    emas = [ema_coefficients(K, half_life_to_rate(h), 10) for h in np.geomspace(5, 5000, budget)]
    best_ema = min(emas, key=lambda a: search_obj.score(merge(stack, a)))
    scores = {
        "single": held_out.score(stack.checkpoint(best_single)),
        "uniform": held_out.score(merge(stack, np.full(K, 1 / K))),
        "ema": held_out.score(merge(stack, best_ema)),
        "lcsc": held_out.score(merge(stack, result.best[0])),
    }
    assert scores["lcsc"] < min(scores["single"], scores["uniform"], scores["ema"]), scores
    assert result.evaluations == budget and result.best_score <= min(v for v in result.init_scores.values())


def test_every_candidate_sums_to_one_and_convex_is_nonnegative(merger: StackMerger, tmp_path: Path) -> None:
    obj = _objective(500, 2)
    for convex in (False, True):
        out = tmp_path / f"c{convex}"
        run_search(merger, obj, SearchConfig(evals=40, convex=convex, sigma=0.2), out, progress=False)
        records = Journal.load(out / "journal.jsonl").records
        assert len(records) == 40
        for r in records:
            a = np.asarray(r["coefficients"])
            assert abs(a.sum() - 1) < 1e-9
            if convex:
                assert a.min() >= 0
        if not convex:
            assert min(np.min(r["coefficients"]) for r in records) < 0, (
                "negative coefficients must be reachable"
            )


def test_children_with_tiny_sums_are_redrawn(merger: StackMerger, tmp_path: Path) -> None:
    result = run_search(
        merger, _objective(300, 2), SearchConfig(evals=30, sigma=0.1), tmp_path, progress=False
    )
    assert result.redraws > 0
    for r in Journal.load(tmp_path / "journal.jsonl").records:
        assert abs(sum(r["coefficients"][0]) - 1) < 1e-9


def test_same_seed_same_journal(merger: StackMerger, tmp_path: Path) -> None:
    obj = _objective(500, 2)
    for name in ("a", "b"):
        run_search(merger, obj, SearchConfig(evals=30, seed=7), tmp_path / name, progress=False)
    a, b = (Journal.load(tmp_path / n / "journal.jsonl") for n in ("a", "b"))
    assert _strip(a.records) == _strip(b.records) and a.header == b.header
    run_search(merger, obj, SearchConfig(evals=30, seed=8), tmp_path / "c", progress=False)
    assert _strip(Journal.load(tmp_path / "c" / "journal.jsonl").records) != _strip(a.records)


def test_resume_in_process_and_extend_budget(merger: StackMerger, tmp_path: Path) -> None:
    obj = _objective(500, 2)
    full = run_search(merger, obj, SearchConfig(evals=37, seed=1), tmp_path / "full", progress=False)
    run_search(merger, obj, SearchConfig(evals=13, seed=1), tmp_path / "part", progress=False)
    again = run_search(
        merger, obj, SearchConfig(evals=37, seed=1), tmp_path / "part", resume=True, progress=False
    )
    full_j, part_j = (Journal.load(tmp_path / n / "journal.jsonl") for n in ("full", "part"))
    assert _strip(full_j.records) == _strip(part_j.records)
    assert np.array_equal(full.best, again.best) and full.best_score == again.best_score


def test_duplicates_are_served_from_the_journal(merger: StackMerger, tmp_path: Path) -> None:
    calls = []

    def score(sd):
        calls.append(1)
        return float(sd["2.bias"].abs().sum())

    uniform = np.full(merger.K, 1 / merger.K)
    init = {"u1": uniform, "u2": uniform.copy()}
    result = run_search(merger, FunctionObjective(score), SearchConfig(evals=10, half_lives=(20.0,)), tmp_path,
                        initial=init, progress=False)  # fmt: skip
    records = Journal.load(tmp_path / "journal.jsonl").records
    assert [r["status"] for r in records[:2]] == ["ok", "cached"] and records[0]["score"] == records[1][
        "score"
    ]
    assert len(calls) == result.objective_calls == 9


def test_failing_objective_is_recorded_and_search_goes_on(merger: StackMerger, tmp_path: Path) -> None:
    count = {"n": 0}

    def flaky(sd):
        count["n"] += 1
        if count["n"] % 5 == 0:
            raise RuntimeError("sampler blew up")
        if count["n"] % 7 == 0:
            return float("nan")
        return float(sd["0.weight"].pow(2).sum())

    result = run_search(merger, FunctionObjective(flaky), SearchConfig(evals=40), tmp_path, progress=False)
    records = Journal.load(tmp_path / "journal.jsonl").records
    failed = [r for r in records if r["status"] == "failed"]
    assert len(records) == 40 and len(failed) == len(result.failures) >= 6
    assert any("sampler blew up" in r["error"] for r in failed) and any("nan" in r["error"] for r in failed)
    assert math.isfinite(result.best_score)


def test_journal_from_other_checkpoints_is_refused(
    merger: StackMerger, tmp_path: Path, ckpt_dir: Path
) -> None:
    run_search(merger, _objective(300, 2), SearchConfig(evals=8), tmp_path, progress=False)
    other = StackMerger(CheckpointStack.open(ckpt_dir, progress=False))
    with pytest.raises(ConfigError, match="different checkpoint set"):
        run_search(
            other,
            FunctionObjective(lambda sd: 0.0),
            SearchConfig(evals=8),
            tmp_path,
            resume=True,
            progress=False,
        )
    with pytest.raises(ConfigError, match="already exists"):
        run_search(merger, _objective(300, 2), SearchConfig(evals=8), tmp_path, progress=False)


class _Noise(SeededObjective):
    def score(self, sd):
        return float(torch.randn(3, generator=self.generator()).sum())


def test_held_out_objective_is_refused(merger: StackMerger, tmp_path: Path) -> None:
    obj = _Noise(noise_seed=3)
    held = obj.held_out()
    assert held.noise_seed != obj.noise_seed and held.score({}) != obj.score({})
    with pytest.raises(ConfigError, match="held-out"):
        run_search(merger, held, SearchConfig(evals=8), tmp_path, progress=False)


class _AliasedHeldOut(_Noise):
    """A held-out copy whose seed differs from the search seed by 2**32: another integer, the same CPU noise."""

    def held_out(self):
        other = super().held_out()
        other.noise_seed = self.noise_seed + 2**32
        return other


def test_search_refuses_held_out_noise_equal_to_its_own_noise(merger: StackMerger, tmp_path: Path) -> None:
    obj = _AliasedHeldOut(noise_seed=3)
    assert obj.held_out().noise_seed != obj.noise_seed and obj.held_out().score({}) == obj.score({})
    with pytest.raises(ConfigError, match="held-out noise .* is identical to the search noise"):
        run_search(merger, obj, SearchConfig(evals=8), tmp_path / "a", progress=False)
    assert not (tmp_path / "a" / "journal.jsonl").exists()
    run_search(merger, _Noise(noise_seed=3), SearchConfig(evals=8), tmp_path / "b", progress=False)
    header = Journal.load(tmp_path / "b" / "journal.jsonl").header
    assert header["objective"]["noise_sha"] == _Noise(noise_seed=3).noise_fingerprint()


def test_max_time_stops_early(merger: StackMerger, tmp_path: Path) -> None:
    import time

    def slow(sd):
        time.sleep(0.05)
        return float(sd["0.bias"].sum())

    result = run_search(
        merger, FunctionObjective(slow), SearchConfig(evals=500, max_time=0.6), tmp_path, progress=False
    )
    assert result.stopped == "max_time" and result.evaluations < 500


def test_groups_and_outputs(merger: StackMerger, tmp_path: Path) -> None:
    grouped = StackMerger(merger.stack, {"first": ["0.*"], "rest": ["*"]})
    obj = _objective(500, 2)
    result = run_search(grouped, obj, SearchConfig(evals=24, sigma=0.05), tmp_path, progress=False)
    assert result.best.shape == (2, merger.K) and np.allclose(result.best.sum(1), 1)
    paths = write_search_outputs(result, grouped, obj, SearchConfig(evals=24, sigma=0.05), tmp_path)
    coeffs = Coefficients.load(paths["coefficients"])
    assert coeffs.groups == {"first": ("0.*",), "rest": ("*",)}
    from safetensors.torch import load_file

    merged = load_file(str(paths["checkpoint"]))
    assert abs(obj.score(merged) - result.best_score) < 1e-5
    card = json.loads(paths["card_json"].read_text())
    assert (
        card["evaluations"] == 24
        and len(card["checkpoints"]) == merger.K
        and card["objective"]["direction"] == "minimize"
    )
    assert "Initial (EMA) individuals" in paths["card_md"].read_text()
