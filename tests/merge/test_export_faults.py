"""The merged-checkpoint export under faults: a full disk keeps the previous export byte-identical and ends
``lcsc merge`` with one line and exit code 2; a kill leaves it too; the rerun overwrites cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lcsc.checkpoints import CheckpointStack
from lcsc.cli.main import main
from lcsc.merge import Coefficients, merge, save_merged
from tests.faults import Killed, fail_save_file, hashes, safetensors_enospc, temp_files
from tests.output import problem_lines


def _merge_cli(ckpt_dir: Path, out: Path, values: list[float]) -> int:
    coeffs = out.parent.parent / "coefficients.json"
    coeffs.write_text(json.dumps({"steps": [100, 200, 300, 400, 500], "coefficients": values}))
    return main(["merge", str(ckpt_dir), "--coeffs", str(coeffs), "-o", str(out)])


def test_full_disk_keeps_the_previous_export_and_is_one_line(ckpt_dir: Path, tmp_path: Path, states, monkeypatch,
                                                            capsys) -> None:
    out = tmp_path / "out" / "merged.safetensors"
    assert _merge_cli(ckpt_dir, out, [0.0, 0.0, 0.0, 0.5, 0.5]) == 0
    before = hashes(out.parent)
    capsys.readouterr()
    fail_save_file(monkeypatch, "merged", safetensors_enospc)
    assert _merge_cli(ckpt_dir, out, [0.0, 0.0, 1.5, -0.5, 0.0]) == 2
    err = capsys.readouterr().err
    assert problem_lines(err)[0].startswith(f"lcsc merge: error: {out}: cannot write: no space left on device")
    assert len(problem_lines(err)) == 1 and "unchanged" in err
    after = hashes(out.parent)
    assert after[out.name] == before[out.name] and temp_files(out.parent) == []
    monkeypatch.undo()
    assert _merge_cli(ckpt_dir, out, [0.0, 0.0, 1.5, -0.5, 0.0]) == 0  # the rerun overwrites cleanly
    expected = 1.5 * states[2]["3.weight"] - 0.5 * states[3]["3.weight"]
    assert torch.allclose(load_file(out)["3.weight"], expected, atol=1e-5) and temp_files(out.parent) == []


def test_a_kill_mid_export_keeps_the_previous_export(ckpt_dir: Path, tmp_path: Path, monkeypatch) -> None:
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    coeffs = Coefficients(tuple(stack.steps), [0.2] * 5)
    out = save_merged(tmp_path / "merged.safetensors", stack, merge(stack, coeffs.values[0]), coeffs)
    before = out.read_bytes()
    fail_save_file(monkeypatch, "merged", lambda: Killed())
    other = Coefficients(tuple(stack.steps), [0.0, 0.0, 0.0, 0.0, 1.0])
    with pytest.raises(Killed):
        save_merged(out, stack, merge(stack, other.values[0]), other)
    assert out.read_bytes() == before and temp_files(tmp_path) == []
