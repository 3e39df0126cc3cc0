"""The search journal under faults: a full disk mid-append leaves the journal as it was (one clear error, exit 2
from the CLI) and the search resumes; a torn last line from a kill is dropped and its candidate re-evaluated, so the
resumed search equals an uninterrupted one; a header torn by a kill does not block a fresh start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.cli.main import main
from lcsc.errors import ConfigError, DiskFullError
from lcsc.merge import StackMerger
from lcsc.objectives import FunctionObjective
from lcsc.search import Journal, SearchConfig, run_search
from lcsc.search.journal import TIMING_FIELDS
from tests.faults import enospc, fail_writes_to, leave_temp, temp_files
from tests.search.test_cli_search import OBJECTIVE

CONFIG = SearchConfig(evals=20, seed=4)
pytestmark = pytest.mark.filterwarnings("ignore:merged .* had negative entries")


@pytest.fixture
def merger(ckpt_dir: Path) -> StackMerger:
    return StackMerger(CheckpointStack.open(ckpt_dir, progress=False))


def _objective() -> FunctionObjective:
    return FunctionObjective(lambda sd: float((sd["3.weight"] - 0.05).pow(2).mean() + sd["0.bias"].abs().mean()))


def _records(folder: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS}
            for r in Journal.load(folder / "journal.jsonl").records]


def _search(merger, folder: Path, resume: bool = False):
    return run_search(merger, _objective(), CONFIG, folder, resume=resume, progress=False)


@pytest.mark.parametrize("on", ["write", "fsync"])
def test_full_disk_mid_search_keeps_the_journal_and_resumes(merger, tmp_path: Path, monkeypatch, on: str) -> None:
    full = _search(merger, tmp_path / "full")
    part = tmp_path / "part"
    journal = part / "journal.jsonl"
    fail_writes_to(journal, enospc, monkeypatch, on=on, after=8)
    with pytest.raises(DiskFullError) as info:
        _search(merger, part)
    assert str(info.value).startswith(f"{journal}: cannot write: no space left on device")
    assert "free some space and resume" in str(info.value)
    monkeypatch.undo()
    lines = journal.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 1 + 8 + 1  # the header, 8 whole records, nothing torn
    assert all(json.loads(line) for line in lines[:-1])
    resumed = _search(merger, part, resume=True)
    assert _records(part) == _records(tmp_path / "full")
    assert resumed.best_score == full.best_score and torch.equal(torch.as_tensor(resumed.best),
                                                                 torch.as_tensor(full.best))


def test_a_torn_last_line_is_dropped_and_the_search_resumes(merger, tmp_path: Path) -> None:
    _search(merger, tmp_path / "full")
    full_lines = (tmp_path / "full/journal.jsonl").read_bytes().splitlines(keepends=True)
    part = tmp_path / "part"
    run_search(merger, _objective(), SearchConfig(evals=13, seed=4), part, progress=False)
    journal = part / "journal.jsonl"
    n = len(journal.read_bytes().splitlines())
    torn = full_lines[n][: len(full_lines[n]) // 2]  # a kill halfway through appending the next record
    with open(journal, "ab") as fh:
        fh.write(torn)
    stray = leave_temp(part / "best_coefficients.json")  # an output the killed run was writing
    assert len(Journal.load(journal).records) == n - 1  # dropped (and cut off the file), no warning, no error
    assert journal.read_bytes().endswith(b"\n")
    _search(merger, part, resume=True)
    assert _records(part) == _records(tmp_path / "full")
    assert all(json.loads(line) for line in journal.read_bytes().splitlines())
    assert not stray.exists() and temp_files(part) == []


def test_a_header_torn_by_a_kill_does_not_block_a_fresh_start(merger, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_bytes(b'{"type":"header","version":2,"ste')
    with pytest.raises(ConfigError, match="no complete header line.*start it again without --resume"):
        Journal.load(journal)
    _search(merger, tmp_path)
    assert _records(tmp_path) and temp_files(tmp_path) == []


def test_cli_full_disk_is_one_line_exit_2_then_resume(ckpt_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    objective = tmp_path / "objective.py"
    objective.write_text(OBJECTIVE)
    out = tmp_path / "out"
    fail_writes_to(out / "journal.jsonl", enospc, monkeypatch, on="fsync", after=5)
    code = main(["search", str(ckpt_dir), "--objective", f"{objective}:score", "--evals", "12", "-o", str(out)])
    err = capsys.readouterr().err
    last = err.strip().split("\n")[-1]  # (before it, only the progress bar's \r-updated line)
    assert code == 2 and err.count("error") == 1 and "Traceback" not in err, err
    assert last.startswith(f"lcsc search: error: {out / 'journal.jsonl'}: cannot write: no space left on device")
    monkeypatch.undo()
    assert main(["search", "--resume", str(out)]) == 0
    assert len(_records(out)) == 12 and (out / "merged.safetensors").is_file() and temp_files(out) == []
