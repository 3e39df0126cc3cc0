"""The CLI: real runs, and bad input giving exit code 2, one clear message, and no partial output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lcsc.checkpoints import CheckpointStack
from lcsc.cli.main import main
from lcsc.demo.quickstart import candidate_coefficients
from tests.faults import tree_snapshot
from tests.output import problem_lines


def _coeffs(path: Path, steps, values) -> Path:
    path.write_text(json.dumps({"steps": steps, "coefficients": values}))
    return path


def test_inspect(ckpt_dir: Path, capsys) -> None:
    assert main(["inspect", str(ckpt_dir)]) == 0
    out = capsys.readouterr().out
    assert (
        "checkpoints (K)    5" in out and "100 … 500 every 100" in out and "stack cache        none yet" in out
    )
    assert not (ckpt_dir / ".lcsc-cache").exists()  # inspect reads headers; the stack is built by the next command
    CheckpointStack.open(ckpt_dir, progress=False)
    assert main(["inspect", str(ckpt_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cache_state"] == "current" and summary["K"] == 5


def test_merge_writes_checkpoint_and_config(ckpt_dir: Path, tmp_path: Path, states) -> None:
    coeffs = _coeffs(tmp_path / "c.json", [100, 200, 300, 400, 500], [0.0, 0.0, 1.5, -0.5, 0.0])
    out = tmp_path / "merged.safetensors"
    assert main(["merge", str(ckpt_dir), "--coeffs", str(coeffs), "-o", str(out)]) == 0
    merged = load_file(str(out))
    expected = 1.5 * states[2]["3.weight"] - 0.5 * states[3]["3.weight"]
    assert torch.allclose(merged["3.weight"], expected, atol=1e-5)
    assert set(merged) == set(states[0])
    with safe_open(str(out), "pt") as fh:
        meta = fh.metadata()
    assert meta["step"] == "500" and json.loads(meta["lcsc_steps"]) == [100, 200, 300, 400, 500]
    config = json.loads((tmp_path / "merged.config.json").read_text())
    assert config["command"] == "merge" and len(config["hashes"]) == 5


@pytest.mark.parametrize(
    "steps,values,extra,match",
    [
        ([100, 200, 300, 400, 600], [0.2] * 5, [], "only in checkpoints: \\[500\\]"),
        ([100, 200, 300, 400], [0.25] * 4, [], "steps do not match"),
        ([100, 200, 300, 400, 500], [0.3] * 5, [], "sum to 1.5"),
    ],
)
def test_merge_bad_coefficients(ckpt_dir: Path, tmp_path: Path, capsys, steps, values, extra, match) -> None:
    coeffs = _coeffs(tmp_path / "c.json", steps, values)
    out = tmp_path / "merged.safetensors"
    before = tree_snapshot(tmp_path, complete_caches=False)  # the checkpoints and the output location
    assert main(["merge", str(ckpt_dir), "--coeffs", str(coeffs), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and len(problem_lines(err)) == 1
    assert __import__("re").search(match, err)
    assert tree_snapshot(tmp_path, complete_caches=False) == before  # valid checkpoints may have been cached


def test_merge_renormalize(ckpt_dir: Path, tmp_path: Path) -> None:
    coeffs = _coeffs(tmp_path / "c.json", [100, 200, 300, 400, 500], [0.3] * 5)
    out = tmp_path / "m.safetensors"
    assert main(["merge", str(ckpt_dir), "--coeffs", str(coeffs), "-o", str(out), "--renormalize"]) == 0
    assert out.is_file()


def test_bad_checkpoint_dir_exit_code(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a-1.pt").write_bytes(b"junk")
    (tmp_path / "junk" / "a-2.pt").write_bytes(b"junk")
    before = tree_snapshot(tmp_path)
    assert main(["inspect", str(tmp_path / "empty")]) == 2
    assert "no checkpoints found" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "junk")]) == 2
    assert "a-1.pt" in capsys.readouterr().err
    assert tree_snapshot(tmp_path) == before


def test_console_script_exit_code(tmp_path: Path) -> None:
    before = tree_snapshot(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "lcsc.cli.main", "inspect", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr
    assert tree_snapshot(tmp_path) == before


def test_quickstart_small(tmp_path: Path, capsys) -> None:
    out = tmp_path / "qs"
    assert (
        main(["quickstart", "-o", str(out), "--iterations", "60", "--window", "30", "--interval", "10"]) == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert len(results["rows"]) == 4 and results["stack"]["K"] == 3
    rows = results["rows"]  # chosen on the search split, reported on the held-out one
    assert [r["chosen"] for r in rows] == [r["search_loss"] == min(x["search_loss"] for x in rows) for r in rows]
    assert all(r["search_loss"] != r["held_out_loss"] for r in rows)
    saved = json.loads((out / "best_coefficients.json").read_text())["coefficients"]
    name = next(r["candidate"] for r in rows if r["chosen"])
    assert np.allclose(saved, candidate_coefficients(3)[name])
    assert "chosen (*) on the search split" in capsys.readouterr().out
    assert all(abs(r["sum"] - 1) < 1e-9 for r in results["rows"])
    assert (out / "merged.safetensors").is_file() and (out / "config.json").is_file()
    assert (
        main(
            [
                "merge",
                str(out / "checkpoints"),
                "--coeffs",
                str(out / "best_coefficients.json"),
                "-o",
                str(tmp_path / "m.safetensors"),
            ]
        )
        == 0
    )


def _bad_dirs(tmp_path: Path, states) -> dict[str, tuple[Path, str]]:
    """Checkpoint folders that must each be refused with a message naming the culprit."""
    from tests.conftest import write_states

    cases = {}
    s = [dict(sd) for sd in states]
    s[1] = {k: v for k, v in s[1].items() if k != "3.bias"}
    cases["keys"] = (write_states(tmp_path / "keys", s)[0].parent, "ckpt-000000200")
    s = [dict(sd) for sd in states]
    s[2]["0.weight"] = torch.zeros(2, 2)
    cases["shapes"] = (write_states(tmp_path / "shapes", s)[0].parent, "'0.weight' has shape")
    s = [dict(sd) for sd in states]
    s[3]["0.bias"] = s[3]["0.bias"].double()
    cases["dtypes"] = (write_states(tmp_path / "dtypes", s)[0].parent, "dtype float64")
    s = [dict(sd) for sd in states]
    s[4]["3.weight"] = s[4]["3.weight"].clone()
    s[4]["3.weight"][0, 0] = float("nan")
    cases["nan"] = (write_states(tmp_path / "nan", s)[0].parent, "'3.weight' has 1 NaN")
    trunc = write_states(tmp_path / "trunc", states)[0]
    trunc.write_bytes(trunc.read_bytes()[:100])
    cases["truncated"] = (trunc.parent, trunc.name)
    return cases


def test_merge_refuses_bad_checkpoint_sets(tmp_path: Path, states, capsys) -> None:
    coeffs = _coeffs(tmp_path / "c.json", [100, 200, 300, 400, 500], [0.2] * 5)
    for name, (folder, match) in _bad_dirs(tmp_path, states).items():
        out = tmp_path / f"{name}.safetensors"
        before = tree_snapshot(tmp_path)
        assert main(["merge", str(folder), "--coeffs", str(coeffs), "-o", str(out)]) == 2, name
        err = capsys.readouterr().err
        assert match in err and len(problem_lines(err)) == 1, (name, err)
        assert tree_snapshot(tmp_path) == before, name  # no output, no temp file, no (empty) .lcsc-cache folder


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on the CI machine)")
def test_merge_on_cuda_matches_cpu(ckpt_dir: Path) -> None:
    import numpy as np

    from lcsc.checkpoints import CheckpointStack
    from lcsc.merge import merge_many

    stack = CheckpointStack.open(ckpt_dir, progress=False)
    A = np.random.default_rng(0).normal(size=(3, stack.K))
    assert torch.allclose(merge_many(stack, A, device="cuda").cpu(), merge_many(stack, A), atol=1e-5)
