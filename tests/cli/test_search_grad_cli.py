"""`lcsc search --optimizer grad` from the command line: a differentiable user objective, the outputs, Σa = 1 at every
step, SIGKILL during the Adam steps + resume, and the settings refused before any work (one line, exit 2)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lcsc.cli.main import main
from lcsc.merge import Coefficients
from lcsc.search import Journal
from lcsc.search.journal import TIMING_FIELDS
from tests.conftest import make_states, write_states
from tests.output import problem_lines

pytestmark = pytest.mark.usefixtures("one_thread")

SLEEP_ENV = "LCSC_TEST_GRAD_SLEEP"
OBJECTIVE = """
import os
import time

import torch


def _floats(state_dict):
    return [(k, t) for k, t in sorted(state_dict.items()) if t.is_floating_point()]


class Obj:
    # differentiable: the mean squared distance of the merged float tensors to a fixed random target state

    direction = "minimize"
    noise_seed = 7

    def __init__(self):
        self._target = None

    def _distance(self, state_dict):
        items = _floats(state_dict)
        if self._target is None:
            gen = torch.Generator().manual_seed(1234)
            self._target = {k: 0.1 * torch.randn(t.shape, generator=gen) for k, t in items}
        return sum((t - self._target[k]).pow(2).mean() for k, t in items) / len(items)

    def score(self, state_dict):
        return float(self._distance(state_dict))

    def loss(self, state_dict, generator, batch_size):
        time.sleep(float(os.environ.get("LCSC_TEST_GRAD_SLEEP", "0")))
        noise = torch.randn((), generator=generator, dtype=torch.float64)  # fresh each step: the journal keeps it
        drift = sum(t.mean() for _, t in _floats(state_dict))
        return self._distance(state_dict) + 1e-3 * float(noise) * drift

    def validation(self):
        return self


objective = Obj()


def plain(state_dict):
    return float(sum(t.float().square().mean() for t in state_dict.values()))
"""
GRAD = ["--optimizer", "grad", "--steps", "30", "--batch-size", "4", "--lr", "0.05"]


@pytest.fixture
def grad_ckpts(tmp_path: Path) -> Path:
    folder = tmp_path / "ckpts"
    write_states(folder, make_states(5, seed=3))
    return folder


@pytest.fixture
def grad_objective(tmp_path: Path) -> Path:
    path = tmp_path / "grad_objective.py"
    path.write_text(OBJECTIVE)
    return path


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "lcsc.cli.main", "search", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _steps(out: Path) -> list[dict]:
    """The step records of ``gradient.jsonl`` without their timing (``state.elapsed_s``)."""
    rows = [json.loads(line) for line in (out / "gradient.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in rows if r["type"] == "step"]
    for r in steps:
        r["state"] = {k: v for k, v in r["state"].items() if k != "elapsed_s"}
    return steps


def _evals(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in Journal.load(out / "journal.jsonl").records]


def _step_lines(out: Path) -> int:
    path = out / "gradient.jsonl"
    return path.read_bytes().count(b'"type":"step"') if path.exists() else 0


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_grad_search_writes_outputs_and_sum_is_one(grad_ckpts: Path, grad_objective: Path, tmp_path: Path,
                                                   capsys) -> None:
    out = tmp_path / "out"
    assert main(["search", str(grad_ckpts), "--objective", f"{grad_objective}:objective", *GRAD, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gradient: 30 steps" in printed and "guard on validation noise" in printed, printed
    for name in ("journal.jsonl", "gradient.jsonl", "best_coefficients.json", "merged.safetensors",
                 "provenance.json", "provenance.md"):
        assert (out / name).is_file(), name
    assert "Gradient search" in (out / "provenance.md").read_text()
    steps = _steps(out)
    assert [s["step"] for s in steps] == list(range(30))
    for s in steps:
        a = np.asarray(s["a"], dtype=np.float64)
        assert a.shape == (1, 5)
        for row in a:
            assert row.sum() == 1.0, (s["step"], row.tolist())
    assert len({json.dumps(s["a"]) for s in steps}) == 30, "the coefficients did not move at every step"
    best = Coefficients.load(out / "best_coefficients.json")
    assert np.all(np.abs(best.values.sum(axis=1) - 1.0) <= 1e-12)
    assert steps[-1]["loss"] < steps[0]["loss"]
    # the exported merge is the exported coefficients' merge
    merged = load_file(str(out / "merged.safetensors"))
    states = make_states(5, seed=3)
    w = best.values[0]
    for key, t in merged.items():
        if t.is_floating_point():
            expect = sum(float(wk) * sd[key].double() for wk, sd in zip(w, states))
            torch.testing.assert_close(t.double(), expect, rtol=1e-5, atol=1e-5)


def test_sigkill_during_gradient_steps_then_resume_matches_uninterrupted(grad_ckpts: Path, grad_objective: Path,
                                                                         tmp_path: Path) -> None:
    args = [str(grad_ckpts), "--objective", f"{grad_objective}:objective", *GRAD]
    # only the run that must die starts an interpreter; the uninterrupted run and the resume run here
    assert main(["search", *args, "-o", str(tmp_path / "A")]) == 0
    killed = tmp_path / "B"
    proc = _cli(*args, "-o", str(killed), env={SLEEP_ENV: "0.1"})
    deadline = time.time() + 120
    while _step_lines(killed) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert 5 <= _step_lines(killed) < 30, "killed outside the gradient steps"
    assert not (killed / "best_coefficients.json").exists()
    assert main(["search", "--resume", str(killed)]) == 0

    a, b = tmp_path / "A", killed
    assert len(_steps(b)) == 30 and _steps(b) == _steps(a)
    assert _evals(b) == _evals(a)
    assert (b / "best_coefficients.json").read_text() == (a / "best_coefficients.json").read_text()
    ta, tb = load_file(str(a / "merged.safetensors")), load_file(str(b / "merged.safetensors"))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.parametrize("spec,flags,match", [
    ("plain", [], "has no gradient"),
    ("objective", ["--workers", "2"], "--workers with --optimizer grad"),
    ("objective", ["--steps", "0"], "--steps 0"),
    ("objective", ["--lr=-1"], "--lr -1"),
    ("objective", ["--batch-size", "1"], "--batch-size 1"),
    ("objective", ["--seed", "150"], "seed=150"),
])
def test_grad_settings_refused_before_any_work(grad_ckpts: Path, grad_objective: Path, tmp_path: Path, capsys,
                                               spec: str, flags: list[str], match: str) -> None:
    out = tmp_path / "out"
    code = main(["search", str(grad_ckpts), "--objective", f"{grad_objective}:{spec}", "--optimizer", "grad",
                 "--steps", "3", "--batch-size", "4", *flags, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = problem_lines(err)
    assert len(lines) == 1 and match in lines[0], err
    assert lines[0].startswith("lcsc search: error: "), lines[0]
    assert not out.exists()


def test_grad_options_without_optimizer_grad_are_refused(grad_ckpts: Path, grad_objective: Path, tmp_path: Path,
                                                         capsys) -> None:
    out = tmp_path / "out"
    code = main(["search", str(grad_ckpts), "--objective", f"{grad_objective}:objective", "--steps", "5",
                 "--evals", "8", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = problem_lines(err)
    assert len(lines) == 1 and "--steps: only with --optimizer grad" in lines[0], err
    assert not out.exists()


def test_resume_with_another_lr_is_refused(grad_ckpts: Path, grad_objective: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["search", str(grad_ckpts), "--objective", f"{grad_objective}:objective", "--optimizer", "grad",
                 "--steps", "3", "--batch-size", "4", "--lr", "0.05", "-o", str(out)]) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["search", "--resume", str(out), "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    lines = problem_lines(err)
    assert len(lines) == 1 and "different --lr" in lines[0] and "0.5" in lines[0], err
    assert _snapshot(out) == before, "a refused resume changed the output folder"
    assert main(["search", "--resume", str(out), "--lr", "0.05", "--steps", "5"]) == 0  # the same lr: fine
    assert [s["step"] for s in _steps(out)] == list(range(5))


def test_resume_naming_a_default_it_ran_with_is_accepted(grad_ckpts: Path, grad_objective: Path, tmp_path: Path
                                                          ) -> None:
    out = tmp_path / "out"
    assert main(["search", str(grad_ckpts), "--objective", f"{grad_objective}:objective", "--optimizer", "grad",
                 "--steps", "2", "--batch-size", "4", "-o", str(out)]) == 0
    assert main(["search", "--resume", str(out), "--lr", "0.004", "--lr-final", "0.1", "--steps", "3"]) == 0
    assert [s["step"] for s in _steps(out)] == list(range(3))
