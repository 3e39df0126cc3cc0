"""Batched sampling with a worker pool is refused before anything runs: Ray workers score one candidate at a time,
so their scores would not equal a serial batched search's (``score_many`` over a whole generation)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.cli.main import main
from lcsc.errors import ConfigError
from lcsc.merge import StackMerger
from lcsc.search import SearchConfig, run_search
from tests.output import problem_lines


class CountingObjective:
    """Scores one state (``score``) or several at once (``score_many``); counts both. ``batched`` like the built-in
    generative objectives' ``--batched-sampling``."""

    direction = "minimize"

    def __init__(self, batched: bool) -> None:
        self.batched, self.calls = batched, 0

    def score(self, state: dict[str, torch.Tensor]) -> float:
        self.calls += 1
        return float(sum(t.double().pow(2).sum() for t in state.values()))

    def score_many(self, states: list[dict[str, torch.Tensor]]) -> list[float]:
        return [self.score(s) for s in states]


class MeanOfTerms(CountingObjective):
    """Like ``mean:`` objectives: the batching flag lives on the terms, not on the objective itself."""

    def __init__(self, batched: bool) -> None:
        super().__init__(False)
        del self.batched
        self.terms = [CountingObjective(batched)]


class SerialPool:
    """A pool double with RayPool's interface that scores each row on its own, in this process."""

    def __init__(self, merger: StackMerger, objective: CountingObjective) -> None:
        self.merger, self.objective, self.started = merger, objective, False

    def start(self, expected: dict, race_samples: int | None = None) -> None:
        self.started = True

    def load_calibration(self, state: dict) -> None:
        raise AssertionError("no calibration in these tests")

    def evaluate(self, stage: str, A: np.ndarray, jobs: list[tuple[int, int]]):
        states = self.merger.merge_many(A)
        for index, row in jobs:
            yield index, (self.objective.score(states[row]), None), 0.0


@pytest.fixture
def merger(regression_ckpts: Path) -> StackMerger:
    return StackMerger(CheckpointStack.open(regression_ckpts, progress=False))


@pytest.mark.parametrize("objective_type", [CountingObjective, MeanOfTerms])
def test_a_pool_with_batched_sampling_is_refused_before_anything_runs(merger, tmp_path: Path, objective_type) -> None:
    objective = objective_type(batched=True)
    pool = SerialPool(merger, objective)
    with pytest.raises(ConfigError, match="--batched-sampling cannot be combined with --workers"):
        run_search(merger, objective, SearchConfig(evals=12), tmp_path / "o", progress=False, pool=pool)
    assert not pool.started and objective.calls == 0
    assert not (tmp_path / "o" / "journal.jsonl").exists()


def test_the_same_pool_without_batching_runs(merger, tmp_path: Path) -> None:
    """The refusal is about batching only: the pool double itself scores a search, on the pool."""
    objective = CountingObjective(batched=False)
    pool = SerialPool(merger, objective)
    result = run_search(merger, objective, SearchConfig(evals=12), tmp_path / "o", progress=False, pool=pool)
    assert pool.started and result.evaluations == 12 and objective.calls >= 6


OBJECTIVE = """
direction = "minimize"


def score(state_dict):
    return float(sum(t.double().pow(2).sum() for t in state_dict.values()))
"""


@pytest.mark.parametrize("pool_flags", [["--workers", "2"], ["--ray-address", "auto"]])
def test_cli_refuses_batched_sampling_with_workers_in_one_line(regression_ckpts: Path, tmp_path: Path, capsys,
                                                               monkeypatch, pool_flags: list[str]) -> None:
    """Refused before the objective, the stack or a pool is built (no Ray is started: the pool is a spy)."""
    pools: list = []
    monkeypatch.setattr("lcsc.cli.search_cmd.make_pool", lambda *a: pools.append(a) or contextlib.nullcontext())
    objective = tmp_path / "obj.py"
    objective.write_text(OBJECTIVE)
    out = tmp_path / "o"
    code = main(["search", str(regression_ckpts), "--objective", f"{objective}:score", "--evals", "8",
                 "--batched-sampling", *pool_flags, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--batched-sampling cannot be combined with --workers" in err, err
    assert len(problem_lines(err)) == 1 and not pools and not (out / "journal.jsonl").exists()
