"""The CPU side of scripts/gpu_check.sh: DEVICE=cpu, QUICK sizes, the train/kill/resume, merge and search steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = "env,train_kill_resume,merge_device,search,nope"


def _run(tmp_path: Path, steps: str) -> subprocess.CompletedProcess:
    # QUICK takes about a minute on 2 idle cores; the budget and the timeout leave room for a loaded machine (a
    # step the budget skips is a failed check here)
    env = {**os.environ, "DEVICE": "cpu", "QUICK": "1", "STEPS": steps, "OUT": str(tmp_path / "out"),
           "WORK": str(tmp_path / "work"), "OMP_NUM_THREADS": "1", "BUDGET_S": "480"}
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
def test_cpu_side_runs_the_steps_and_writes_the_summary(tmp_path):
    bad = _run(tmp_path, STEPS)
    assert bad.returncode == 2 and "unknown STEPS ['nope']" in bad.stderr
    proc = _run(tmp_path, STEPS.removesuffix(",nope"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["device"] == "cpu" and summary["quick"]
    assert list(summary["steps"]) == ["env", "train_kill_resume", "merge_device", "search"]
    assert all(s["status"] == "passed" and s["wall_s"] > 0 for s in summary["steps"].values())
    steps = {r["step"]: r["result"] for r in map(json.loads, (out / "steps.jsonl").read_text().splitlines())}
    train = steps["train_kill_resume"]
    assert train["killed"] and 0 < train["resumed_at"] < train["iterations"] == train["final_step"]
    assert train["bit_identical"] and train["max_abs_diff"] == 0
    assert steps["merge_device"]["max_abs_diff"] == 0 and steps["search"]["evaluations"] >= 6
    assert "=== search" in (out / "gpu_check.log").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.log", "steps.jsonl", "summary.json"]
