"""Ablation bookkeeping: crossing iterations, speed-ups, spreads; one tiny variant run end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lcsc.analysis import VARIANTS, AblationConfig, summarize
from lcsc.analysis.ablation import sweep_variants
from lcsc.errors import ConfigError
from tests.output import run_script


def test_summarize_speedup_and_spread():
    steps = (100, 200, 300, 400)
    curves = {"baseline": {0: [50, 40, 30, 20], 1: [52, 42, 31, 22]},
              "fast": {0: [40, 21, 18, 15], 1: [41, 22, 19, 16]},
              "slow": {0: [60, 55, 50, 45], 1: [61, 56, 51, 46]}}
    rows = {r["variant"]: r for r in summarize(curves, steps)}
    assert rows["baseline"]["speedup"] == pytest.approx(1.0)
    assert rows["baseline"]["iters_to_baseline_fd"] == pytest.approx(400)
    assert rows["fast"]["speedup"] > 1.5 and rows["fast"]["within_spread"] is False
    assert rows["slow"]["speedup"] is None and rows["slow"]["iters_to_baseline_fd"] is None
    assert rows["fast"]["final_fd_mean"] == pytest.approx(15.5) and rows["fast"]["final_fd_std"] == pytest.approx(0.5)
    assert rows["fast"]["seeds_better"] == "2/2" and rows["slow"]["seeds_better"] == "0/2"
    mixed = summarize({"baseline": curves["baseline"], "mixed": {0: [9, 9, 9, 19], 1: [9, 9, 9, 23]}}, steps)
    assert mixed[1]["seeds_better"] == "1/2"
    assert mixed[1]["iters_to_baseline_fd"] == 100 and mixed[1]["speedup"] == pytest.approx(4.0)  # reached at once
    dip = summarize({"baseline": curves["baseline"], "dip": {0: [50, 15, 30, 20], 1: [52, 17, 32, 22]}}, steps)
    assert dip[1]["iters_to_baseline_fd"] == pytest.approx(100 + 100 * 30 / 35)  # the first crossing of 21


@pytest.mark.parametrize("kw", [dict(eval_every=0), dict(iterations=0), dict(iterations=-200), dict(eval_every=7)])
def test_config_rejects_bad_sizes(kw):
    with pytest.raises(ConfigError, match="eval_every"):
        AblationConfig(**kw)


def test_config_and_sweeps():
    assert AblationConfig().variants[0].name == "baseline" and len(VARIANTS) == 6
    assert [v.clts_mu for v in sweep_variants("mu", [0.1, 0.5])] == [0.1, 0.5]
    with pytest.raises(ConfigError, match="eval_every"):
        AblationConfig(iterations=100, eval_every=30)
    with pytest.raises(ConfigError, match="sweep"):
        sweep_variants("lr", [1.0])


def test_one_tiny_run_per_recipe_trains_and_scores(tmp_path):
    from lcsc.analysis.ablation_runs import train_and_score

    cfg = AblationConfig(iterations=8, eval_every=4, seeds=(0,), batch_size=16, channels=8, eval_samples=32,
                         eval_nfe=1)
    fds = train_and_score(VARIANTS["all (CLTS+MD+LRC)"], 0, cfg, tmp_path, progress=False)
    assert len(fds) == 2 and all(f > 0 for f in fds)
    assert train_and_score(VARIANTS["Min-SNR"], 0, cfg, tmp_path, progress=False)[-1] > 0


def test_ablation_benchmark_quick_smoke(tmp_path, monkeypatch, capsys):
    """``benchmarks/ablation.py --quick`` (shrunk further: 20 iterations, two evaluations): plot, table and
    ablation.json with the issue's keys."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "ablation.py"
    out = tmp_path / "abl"
    code, stdout, stderr = run_script(script, ["--quick", "--seeds", "0", "--iterations", "20", "--eval-every", "10",
                                                "--out", str(out)], monkeypatch, capsys)
    assert code == 0, stderr[-2000:]
    rows = json.loads(stdout.strip().splitlines()[-1])
    assert [r["variant"] for r in rows] == list(VARIANTS)
    assert rows == json.loads((out / "ablation.json").read_text())
    for r in rows:
        assert set(r) == {"variant", "final_fd_mean", "final_fd_std", "iters_to_baseline_fd", "speedup"}
        assert math.isfinite(r["final_fd_mean"]) and r["final_fd_mean"] > 0
    assert rows[0]["speedup"] == 1.0
    assert (out / "ablation.png").stat().st_size > 0 and "| baseline |" in (out / "ablation.md").read_text()
    code, _, _ = run_script(script, ["--seeds", "x", "--out", str(out)], monkeypatch, capsys)
    assert code != 0 and "--seeds 'x'" in str(code)  # sys.exit("error: …"): Python prints it, exit status 1
