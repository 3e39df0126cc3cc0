"""Search ablation: the plan is what the flags say, held-out scores are direct held-out scores, CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lcsc.analysis.search_ablation import FACTORS, make_plan, run_ablation, summarize
from lcsc.checkpoints import CheckpointStack
from lcsc.errors import ConfigError
from lcsc.merge import StackMerger
from lcsc.objectives.base import SeededObjective


class CheapObjective(SeededObjective):
    """Distance of the merged weights to a target, plus a noise term that depends on the seed and sample count."""

    def __init__(self, target: dict[str, torch.Tensor], num_samples: int = 64, noise_seed: int = 0):
        super().__init__(noise_seed)
        self.target, self.num_samples, self.name, self.calls = target, num_samples, "cheap", 0

    def with_samples(self, n: int) -> CheapObjective:
        other = CheapObjective(self.target, n, self.noise_seed)
        return other

    def score(self, state: dict[str, torch.Tensor]) -> float:
        self.calls += 1
        g = torch.Generator().manual_seed(self.noise_seed * 1000 + self.num_samples)
        d = sum(float(((state[k].float() - v.float()) ** 2).sum()) for k, v in self.target.items())
        return d + 0.01 * float(torch.rand(1, generator=g))


@pytest.fixture
def window(ckpt_dir, states):
    stack = CheckpointStack.open(ckpt_dir, cache=False, progress=False)
    target = {k: (0.7 * states[-1][k] + 0.3 * states[-2][k]) for k in states[0] if states[0][k].is_floating_point()}
    return StackMerger(stack), CheapObjective(target)


def test_plan_is_what_the_flags_say():
    plan = make_plan({"samples": [50, 100, 200], "sigma": [0.5, 1, 2], "parents": [4, 16], "convex": [True]},
                     samples=100, evals=14, seeds=3)
    names = [s.name for s in plan.settings]
    assert names == ["default", "samples=50", "samples=200", "sigma=0.5×", "sigma=2×", "parents=4", "parents=16",
                     "convex=on"]  # values equal to the default are the default row, not a second setting
    assert plan.searches == 8 * 3 and plan.seeds == (0, 1, 2) and plan.evals == 14 and plan.max_samples == 200
    by = {s.name: s for s in plan.settings}
    assert by["sigma=2×"].search_config(K=100, evals=14, seed=1).sigma == pytest.approx(0.02)
    assert by["convex=on"].search_config(100, 14, 0).convex and not by["default"].search_config(100, 14, 0).convex
    assert by["parents=4"].parents == 4 and by["parents=4"].samples == 100
    only = make_plan({"convex": [True]}, samples=32, evals=8, seeds=1)
    assert [s.name for s in only.settings] == ["default", "convex=on"] and only.searches == 2
    assert set(FACTORS) == {"samples", "sigma", "parents", "convex"}


def test_bad_input_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown factor.*'temperature'"):
        make_plan({"temperature": [1]}, samples=32, evals=8, seeds=3)
    with pytest.raises(ConfigError, match="search seeds = 0"):
        make_plan({"sigma": [2]}, samples=32, evals=8, seeds=0)


def test_held_out_score_equals_direct_score_and_searches_follow_the_plan(window, tmp_path):
    merger, objective = window
    plan = make_plan({"samples": [32], "sigma": [2.0], "convex": [True]}, samples=64, evals=10, seeds=2)
    rows = run_ablation(merger, objective, plan, tmp_path / "w", progress=False)
    assert [(r["setting"], r["seed"]) for r in rows] == [(s.name, i) for s in plan.settings for i in (0, 1)]
    # the 6 EMA initial individuals are scored once for the 3 settings × 2 seeds at 64 samples, not 6 times
    assert objective.calls <= 3 * 2 * 10 - 5 * 6
    held = objective.held_out()
    for r in rows:
        assert r["evals"] == 10
        direct = held.score(merger.merge_many(np.asarray(r["coefficients"])[None])[0])
        # float32 merges: a GEMM of one row and of a generation may round differently (BLAS kernels differ by CPU)
        assert r["held_out"] == pytest.approx(direct, rel=1e-6)
        assert abs(sum(r["coefficients"]) - 1) < 1e-9
        if r["convex"]:
            assert min(r["coefficients"]) >= 0
    # the seeds change the children: two seeds of one setting explore differently
    j0 = (tmp_path / "w/default/seed-0/journal.jsonl").read_text()
    assert j0 != (tmp_path / "w/default/seed-1/journal.jsonl").read_text()
    table = summarize(rows)
    assert [t["setting"] for t in table] == [s.name for s in plan.settings]
    d = table[0]
    assert d["runs"] == 2 and d["held_out_mean"] == pytest.approx(np.mean(d["held_out"]))
    assert d["held_out_std"] == pytest.approx(np.std([r["held_out"] for r in rows[:2]]))


def test_a_one_checkpoint_window_is_refused(window, tmp_path):
    merger, objective = window

    class One:
        K, G, steps, hashes = 1, 1, [100], ["x"]

    with pytest.raises(ConfigError, match="1 checkpoint"):
        run_ablation(One(), objective, make_plan({}, samples=64, evals=8, seeds=1), tmp_path, progress=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from lcsc.models import ModelConfig
    from lcsc.training import RecordConfig, TrainConfig, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny-cm")
    cfg = TrainConfig(model=ModelConfig(kind="cm", channels=8), iterations=4, batch_size=8,
                      record=RecordConfig(window=4, interval=1), sample_count=0)
    train(cfg, out, progress=False)
    return out / "windows" / "4"


def test_cli_end_to_end(tiny_run, tmp_path, capsys):
    from lcsc.cli.main import main

    out = tmp_path / "abl"
    rc = main(["analyze", "ablation-search", str(tiny_run), "-o", str(out), "--quick", "--search-seeds", "2",
               "--factors", "sigma,convex"])
    assert rc == 0
    data = json.loads((out / "ablation-search.json").read_text())
    assert [t["setting"] for t in data["table"]] == ["default", "sigma=2×", "convex=on"]
    assert len(data["searches"]) == 6 and all(t["runs"] == 2 for t in data["table"])
    assert data["info"]["objective"] == "fd_digits" and data["info"]["evals"] == 8
    assert (out / "ablation-search.png").is_file() and (out / "ablation-search.config.json").is_file()
    assert "| default |" in (out / "ablation-search.md").read_text()
    assert main(["analyze", "ablation-search", str(tiny_run), "-o", str(tmp_path / "x"), "--quick",
                 "--factors", "samples,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["analyze", "ablation-search", str(tiny_run), "-o", str(tmp_path / "y"), "--quick",
                 "--search-seeds", "0"]) == 2
