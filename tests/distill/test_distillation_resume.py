"""``benchmarks/distillation.py --quick``: a full run, and the same run killed with SIGKILL (the whole process group,
as a session's end kills what it started) in every stage — training, EMA* grids, searches, held-out rows — and resumed
each time: the weights, EMA* choices, journals, held-out rows and the report's figures equal the uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "distillation.py"
RUNS = ("teacher", "ct", "ct-short", "cd", "cd-short", "cd-small")


def _cmd(out: Path) -> list[str]:
    return [sys.executable, str(BENCH), "--quick", "--seed", "10", "--out", str(out), "--no-progress"]


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0


def _journal_lines(out: Path) -> int:
    return sum(_lines(p) for p in out.glob("cd/search/*/journal.jsonl"))


# (stage, condition on the work folder that means the stage is under way)
KILLS = [
    ("training", lambda out: _lines(out / "teacher" / "dm" / "log.jsonl") >= 3),
    ("EMA* grids", lambda out: (out / "ct" / "ema_star.json").is_file()),
    ("searches", lambda out: _journal_lines(out) >= 3),
    ("held-out rows", lambda out: (out / "ct" / "rows.json").is_file()),
]


def _kill_when(out: Path, condition, timeout: float = 300.0) -> None:
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + timeout
    while not condition(out) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before the kill point: {proc.stderr.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def _clock_or_path(record: dict, key: str) -> bool:
    """Journal fields that legitimately differ between two folders: clocks, and the header's file hashes (the CD
    checkpoints' metadata names the teacher's path, which holds the folder's name)."""
    return "time" in key or key.endswith("_s") or (record.get("type") == "header" and key in ("hashes", "anchors"))


def _state(out: Path) -> dict:
    """What must not depend on the kills: weights, EMA* caches, rows, search journals (less their clocks)."""
    weights = {r: load_file(str(out / r / ("dm" if r == "teacher" else "cm-cd" if r.startswith("cd") else "cm-ct") /
                                "last.safetensors")) for r in RUNS}
    journals = {}
    for p in sorted(out.glob("*/search/*/journal.jsonl")):
        recs = [json.loads(line) for line in p.read_text().splitlines()]
        journals[str(p.relative_to(out))] = [{k: v for k, v in r.items() if not _clock_or_path(r, k)} for r in recs]
    caches = {f"{r}/{f}": json.loads((out / r / f).read_text()) for r in RUNS for f in ("ema_star.json", "rows.json")}
    report = json.loads((out / "report" / "report.json").read_text())
    figures = {k: report[k] for k in ("speedup_iters", "speedup_images", "cd_lcsc_1nfe_vs_ema_2nfe", "dm_nfe_match",
                                      "converged", "convergence")}
    return {"weights": weights, "journals": journals, "caches": caches, "figures": figures}


def test_quick_benchmark_killed_in_every_stage_resumes_to_the_uninterrupted_result(tmp_path):
    full = tmp_path / "full"
    done = subprocess.run(_cmd(full), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    head = json.loads(done.stdout.strip().splitlines()[-1])  # the last line is the headline JSON
    assert {"speedup_iters", "speedup_images", "speedup_with_search", "cd_lcsc_1nfe_vs_ema_2nfe", "converged",
            "search_cost_fraction", "minutes"} <= set(head)
    report = json.loads((full / "report" / "report.json").read_text())
    assert {"speedup_iters", "speedup_images", "speedup_with_search", "cd_lcsc_1nfe_vs_ema_2nfe", "dm_nfe_match",
            "converged", "search_cost_fraction"} <= set(report)
    for png in ("cd_curves.png", "ct_curves.png", "teacher_curves.png", "nfe.png"):
        assert (full / "report" / png).stat().st_size > 10_000
    assert "## Speed-up (paper Tab. 7)" in (full / "report" / "report.md").read_text()

    killed = tmp_path / "killed"
    for _stage, condition in KILLS:
        _kill_when(killed, condition)
    resumed = subprocess.run(_cmd(killed), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _state(full), _state(killed)
    for run in RUNS:
        assert a["weights"][run].keys() == b["weights"][run].keys()
        assert all((a["weights"][run][k] == b["weights"][run][k]).all() for k in a["weights"][run]), run
    assert a["journals"] == b["journals"]
    assert a["caches"] == b["caches"]
    assert a["figures"] == b["figures"]

    # a finished run is not redone: every stage is reused (only the report is written again)
    again = subprocess.run(_cmd(killed), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert json.loads(again.stdout.strip().splitlines()[-1])["minutes"] < head["minutes"] / 2


def test_another_configuration_in_the_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "distill_config.json").write_text(json.dumps({"seed": 10, "iterations": 999}))
    res = subprocess.run(_cmd(out), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "holds another configuration's run (differs in" in res.stderr and "iterations" in res.stderr
    assert res.stderr.count("\n") == 1
