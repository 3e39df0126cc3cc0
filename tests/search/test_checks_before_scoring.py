"""Optimiser settings that cannot run are refused before the first evaluation: no objective call, no journal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.cli.main import main
from lcsc.errors import ConfigError
from lcsc.merge import StackMerger
from lcsc.search import SearchConfig, run_search
from tests.faults import tree_snapshot
from tests.output import problem_lines

REFUSED = [
    (dict(optimizer="cmaes", convex=True), "--convex works with --optimizer alg1 only"),
    (dict(optimizer="sep-cmaes", convex=True), "--convex works with --optimizer alg1 only"),
    (dict(optimizer="cmaes", sigma=0.0), "sigma=0.0: CMA-ES needs a step size > 0"),
    (dict(optimizer="sep-cmaes", sigma=0.0), "sigma=0.0: CMA-ES needs a step size > 0"),
    (dict(optimizer="sep-cmaes", space="ema-basis:2"), r"sep-cmaes needs at least 3 coefficients .*D = 2"),
]


class CountingObjective:
    """A counting double: distance of the flattened weights to zero; ``calls`` counts every score."""

    direction = "minimize"

    def __init__(self) -> None:
        self.calls = 0

    def score(self, state: dict[str, torch.Tensor]) -> float:
        self.calls += 1
        return float(sum(t.double().pow(2).sum() for t in state.values()))


@pytest.fixture
def merger(regression_ckpts: Path) -> StackMerger:
    return StackMerger(CheckpointStack.open(regression_ckpts, progress=False))


@pytest.mark.parametrize("settings,match", REFUSED)
def test_refused_with_zero_evaluations_and_no_journal(merger, tmp_path: Path, settings: dict, match: str) -> None:
    objective, out = CountingObjective(), tmp_path / "o"
    with pytest.raises(ConfigError, match=match):
        run_search(merger, objective, SearchConfig(evals=20, **settings), out, progress=False)
    assert objective.calls == 0
    assert not (out / "journal.jsonl").exists()


@pytest.mark.parametrize("settings", [dict(optimizer="alg1", convex=True), dict(optimizer="alg1", sigma=0.0),
                                      dict(optimizer="cmaes", space="ema-basis:2"),
                                      dict(optimizer="sep-cmaes", space="ema-basis:3")])
def test_the_neighbouring_valid_settings_still_run(merger, tmp_path: Path, settings: dict) -> None:
    """The checks refuse exactly the impossible combinations (CMA-ES on one chart dimension is fine)."""
    objective = CountingObjective()
    result = run_search(merger, objective, SearchConfig(evals=10, **settings), tmp_path / "o", progress=False)
    assert result.evaluations == 10 and objective.calls >= 7


COUNTING_FILE = """
from pathlib import Path

direction = "minimize"


def score(state_dict):
    with open({count!r}, "a") as f:
        f.write("x")
    return float(sum(t.double().pow(2).sum() for t in state_dict.values()))
"""


@pytest.mark.parametrize("flags,match", [
    (["--optimizer", "cmaes", "--convex"], "--convex works with --optimizer alg1 only"),
    (["--optimizer", "cmaes", "--sigma", "0"], "CMA-ES needs a step size > 0"),
    (["--optimizer", "sep-cmaes", "--space", "ema-basis:2"], "sep-cmaes needs at least 3 coefficients"),
])
def test_cli_refuses_before_scoring_with_one_line(regression_ckpts: Path, tmp_path: Path, capsys, flags, match) -> None:
    count, objective = tmp_path / "calls.txt", tmp_path / "counting.py"
    objective.write_text(COUNTING_FILE.format(count=str(count)))
    out = tmp_path / "o"
    before = tree_snapshot(tmp_path, regression_ckpts, complete_caches=False)
    code = main(["search", str(regression_ckpts), "--objective", f"{objective}:score", "--evals", "20", *flags,
                 "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and match in err and len(problem_lines(err)) == 1, err
    assert tree_snapshot(tmp_path, regression_ckpts, complete_caches=False) == before  # a cache of valid inputs: kept
    assert not count.exists(), f"the objective was called {len(count.read_text())} times"
    assert not (out / "journal.jsonl").exists() and not (out / "search_args.json").exists()
