"""``lcsc inspect`` reads headers only and writes nothing; a broken or unsafe file is still one line, exit 2, and its
stage line ends in ``failed (…)`` (issue 36)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.cli.main import main
from tests.faults import tree_snapshot
from tests.output import problem_lines


class _Payload:
    def __reduce__(self):
        return os.system, ("echo payload ran",)


def _garble_data(path: Path) -> None:
    """Overwrite everything after a safetensors file's header with NaN bytes (the stack would refuse the values)."""
    data = path.read_bytes()
    n = 8 + struct.unpack("<Q", data[:8])[0]
    path.write_bytes(data[:n] + b"\xff" * (len(data) - n))


def test_inspect_writes_nothing_and_reads_no_tensor_data(ckpt_dir: Path, tmp_path: Path, capsys) -> None:
    P = CheckpointStack.open(ckpt_dir, cache=False, progress=False).P  # noqa: N806 - the paper's symbol
    for path in ckpt_dir.glob("*.safetensors"):
        _garble_data(path)
    before = tree_snapshot(tmp_path)
    assert main(["inspect", str(ckpt_dir)]) == 0
    assert main(["inspect", str(ckpt_dir), "--cache-dir", str(tmp_path / "new" / "cache"), "--json"]) == 0
    assert tree_snapshot(tmp_path) == before  # no .lcsc-cache, no cache-dir, no temp file: paths, sizes, mtimes
    out, err = capsys.readouterr()
    text, summary = out[: out.index("{")], json.loads(out[out.index("{"):])
    assert f"parameters (P)     {P:,} float scalars" in text and "read               safetensors header ×5; no tensor " \
        "data" in text and "stack cache        none yet: built by the next command, at " in text
    assert summary["P"] == P and summary["cache_state"] == "none" and summary["cache_free_at"] == str(tmp_path)
    assert summary["stack_bytes_by_storage"] == {"float32": 20 * P, "bfloat16": 10 * P, "float16": 10 * P}
    assert "[lcsc] checkpoint headers: reading 5 headers (no tensor data) …" in err and not problem_lines(err)


def _payload(folder: Path) -> str:
    torch.save({"w": torch.zeros(2), "x": _Payload()}, folder / "ckpt-000000200.pt")
    return "ckpt-000000200.pt: refused: loading it needs a pickled object (posix.system)"


def _truncated(folder: Path) -> str:
    last = sorted(folder.glob("*.safetensors"))[-1]
    last.write_bytes(last.read_bytes()[:-10])
    return f"{last.name}: truncated: its header describes"


def _bad_json(folder: Path) -> str:
    last = sorted(folder.glob("*.safetensors"))[-1]
    data = last.read_bytes()
    last.write_bytes(data[:8] + b"X" + data[9:])
    return f"{last.name}: bad safetensors header (not JSON"


@pytest.mark.parametrize("damage", [_payload, _truncated, _bad_json])
def test_broken_files_are_one_line_and_leave_nothing(ckpt_dir: Path, tmp_path: Path, capsys, damage) -> None:
    expected = damage(ckpt_dir)
    before = tree_snapshot(tmp_path)
    assert main(["inspect", str(ckpt_dir)]) == 2
    assert tree_snapshot(tmp_path) == before
    err = capsys.readouterr().err
    line, = problem_lines(err)
    assert line.startswith("lcsc inspect: error: ") and expected in line, line
    failed = err.splitlines()[1]
    assert failed.startswith("[lcsc] checkpoint headers: failed (") and failed.endswith("…)"), failed


def test_no_cache_and_a_current_cache(ckpt_dir: Path, capsys) -> None:
    assert main(["inspect", str(ckpt_dir), "--no-cache"]) == 0
    assert "stack cache        not used (--no-cache" in capsys.readouterr().out
    CheckpointStack.open(ckpt_dir, storage="bfloat16", progress=False)
    assert main(["inspect", str(ckpt_dir), "--storage", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "stack cache        current: reused by the next command, " in out and "--storage bfloat16: " in out
