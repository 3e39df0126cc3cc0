"""`lcsc search` from the command line: a user objective, SIGKILL at any point + resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lcsc.cli.main import main
from lcsc.search import Journal
from lcsc.search.journal import TIMING_FIELDS
from tests.output import problem_lines

OBJECTIVE = """
import os, time
import torch

direction = "minimize"
_target = None


def score(state_dict):
    global _target
    flat = torch.cat([t.reshape(-1) for _, t in sorted(state_dict.items())])
    if _target is None:
        _target = torch.randn(flat.shape, generator=torch.Generator().manual_seed(0)) * 0.1
    time.sleep(float(os.environ.get("LCSC_TEST_SLEEP", "0")))
    return float((flat - _target).pow(2).mean())


class Prefix:
    # racing-capable: scores the first num_samples parameters only

    direction = "minimize"
    num_samples = 400

    def with_samples(self, n):
        other = Prefix()
        other.num_samples = n
        return other

    def score(self, state_dict):
        flat = torch.cat([t.reshape(-1) for _, t in sorted(state_dict.items())])
        target = torch.randn(flat.shape, generator=torch.Generator().manual_seed(0)) * 0.1
        time.sleep(float(os.environ.get("LCSC_TEST_SLEEP", "0")))
        return float((flat - target)[: self.num_samples].pow(2).mean())


racer = Prefix()
"""


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lcsc.cli.main", "search", *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _records(out: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in TIMING_FIELDS}
        for r in Journal.load(out / "journal.jsonl").records
    ]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture
def objective_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_objective.py"
    path.write_text(OBJECTIVE)
    return path


# A generation's records are appended in one burst after it is scored: a kill point is reached mid-burst or, when
# the poll misses the burst, at the generation's end, so each kill point lies before the last generation starts.
@pytest.mark.parametrize("extra,kills", [
    ([], (3, 9, 20)),  # Algorithm 1: mid-initialisation, mid-generation, later generation
    (["--optimizer", "sep-cmaes"], (9, 17)),  # generations end at 6, 20, 30 records: never at the run's end
    (["--optimizer", "cmaes", "--space", "ema-basis:4"], (8, 21)),
    (["--optimizer", "alg1", "--space", "spline:5", "--racing", "--objective", "{obj}:racer"], (10, 23)),
    (["--anchor", "{anchor}", "--space", "ema-basis:4", "--optimizer", "cmaes"], (4, 19)),  # an anchored search
])
def test_sigkill_anywhere_then_resume_matches_uninterrupted(
    regression_ckpts: Path, objective_file: Path, tmp_path: Path, extra: list[str], kills: tuple[int, ...]
) -> None:
    from lcsc.checkpoints import CheckpointStack, save_checkpoint

    last = CheckpointStack.open(regression_ckpts, progress=False).checkpoint(-1)
    anchor = save_checkpoint(tmp_path / "anchor.safetensors", {k: 0.9 * v for k, v in last.items()}, step=0)
    args = ["--objective", f"{objective_file}:score", "--evals", "30", "--seed", "3"]
    args += [a.format(obj=objective_file, anchor=anchor) for a in extra]
    # only the runs that must die start an interpreter (each pays torch's import); the uninterrupted reference and
    # the resumes run here, through the same CLI entry point
    assert main(["search", str(regression_ckpts), *args, "-o", str(tmp_path / "ref")]) == 0
    expected = _records(tmp_path / "ref")
    total = len(expected)
    for kill_after in kills:
        out = tmp_path / f"killed{kill_after}"
        proc = _cli(str(regression_ckpts), *args, "-o", str(out), env={"LCSC_TEST_SLEEP": "0.05"})
        deadline = time.time() + 120
        while (
            _lines(out / "journal.jsonl") < 1 + kill_after and proc.poll() is None and time.time() < deadline
        ):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _lines(out / "journal.jsonl") < total + 1, "the run finished before it could be killed"
        assert main(["search", "--resume", str(out)]) == 0
        assert _records(out) == expected
        best = json.loads((out / "best_coefficients.json").read_text())
        assert best == json.loads((tmp_path / "ref" / "best_coefficients.json").read_text())


def test_cli_search_outputs(regression_ckpts: Path, objective_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["search", str(regression_ckpts), "--objective", f"{objective_file}:score", "--evals", "16",
                 "--groups", "prefix", "-o", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "best min score" in printed and "initial ema-hl10" in printed
    for name in (
        "journal.jsonl",
        "best_coefficients.json",
        "merged.safetensors",
        "provenance.json",
        "provenance.md",
    ):
        assert (out / name).is_file(), name
    assert set(json.loads((out / "best_coefficients.json").read_text())["groups"]) == {"0", "2"}


@pytest.mark.parametrize(
    "spec,match",
    [
        ("nowhere/missing.py:score", "no such file"),
        ("{obj}:nope", "has no attribute 'nope'"),
        ("no_such_module_xyz:score", "cannot import module"),
        ("justaname", "expected 'path/to/file.py:function'"),
    ],
)
def test_bad_objective_specs(
    regression_ckpts: Path, objective_file: Path, tmp_path: Path, capsys, spec, match
) -> None:
    code = main(
        [
            "search",
            str(regression_ckpts),
            "--objective",
            spec.format(obj=objective_file),
            "--evals",
            "8",
            "-o",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert match in err and len(problem_lines(err)) == 1


def test_resume_without_journal_and_missing_args(tmp_path: Path, capsys) -> None:
    assert main(["search", "--resume", str(tmp_path)]) == 2
    assert "no search_args.json" in capsys.readouterr().err
    assert main(["search", str(tmp_path)]) == 2
    assert "needs CKPT_DIR and -o OUT_DIR" in capsys.readouterr().err


def test_resume_with_another_optimizer_is_refused_naming_it(
    regression_ckpts: Path, objective_file: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "o"
    assert main(["search", str(regression_ckpts), "--objective", f"{objective_file}:score", "--evals", "10",
                 "--optimizer", "sep-cmaes", "--space", "spline:4", "-o", str(out)]) == 0
    card = json.loads((out / "provenance.json").read_text())
    assert card["space"]["spec"] == "spline:4" and len(card["space"]["w"][0]) == 4
    assert card["optimizer"]["optimizer"] == "sep-cmaes" and card["samples"] == 0
    capsys.readouterr()
    for flag, value in (("--optimizer", "cmaes"), ("--space", "full"), ("--race-keep", "0.5")):
        assert main(["search", "--resume", str(out), flag, value]) == 2
        err = capsys.readouterr().err
        assert f"different {flag}" in err and len(problem_lines(err)) == 1
    assert main(["search", "--resume", str(out), "--optimizer", "sep-cmaes", "--evals", "14"]) == 0  # same: fine


@pytest.mark.parametrize("flags,match", [
    (["--optimizer", "adam"], "optimizer 'adam'"),
    (["--space", "ema-basis:1"], "must be >= 2"),
    (["--space", "spline:99"], "exceeds the"),
    (["--racing", "--race-fraction", "1.5"], "race_fraction=1.5"),
    (["--racing"], "--racing needs an objective"),
])
def test_bad_search_settings_exit_2_with_one_line(
    regression_ckpts: Path, objective_file: Path, tmp_path: Path, capsys, flags, match
) -> None:
    code = main(["search", str(regression_ckpts), "--objective", f"{objective_file}:score", "--evals", "8",
                 *flags, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and match in err and len(problem_lines(err)) == 1, err
