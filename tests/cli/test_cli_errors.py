"""Bad input to any ``lcsc`` command: one line ``lcsc CMD: error: …`` naming the file or value, exit 2, no traceback,
no partial output, nothing overwritten (issue 17, "Trust")."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lcsc.cli import inspect_cmd
from lcsc.cli.main import main
from lcsc.errors import DiskFullError
from tests.faults import tree_snapshot

pytestmark = pytest.mark.usefixtures("one_thread")

PROGRESS = re.compile(r"\d+%\||\d+it/s|s/it|\r|^\[lcsc\] ")  # tqdm bars and stage lines are not error lines
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
OBJECTIVE = """
def score(state_dict):
    return float(sum(v.float().square().mean() for v in state_dict.values()))


def broken():
    raise ValueError("factory fails")
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, Path]:
    """A tiny DM run (power EMAs on), its window, a coefficient file, a user objective, a finished search."""
    root = tmp_path_factory.mktemp("cli-errors")
    run = root / "run"
    assert main(["train", "dm", "--iterations", "30", "--batch-size", "8", "--channels", "8", "--record-window", "20",
                 "--record-interval", "5", "--sample-count", "0", "--phema-sigma-rels", "0.05,0.10",
                 "--phema-every", "5", "-o", str(run)]) == 0
    ckpts = run / "windows" / "30"
    (root / "coeffs.json").write_text(json.dumps({"steps": [15, 20, 25, 30], "coefficients": [0.25] * 4}))
    (root / "objective.py").write_text(OBJECTIVE)
    assert main(["search", str(ckpts), "--objective", f"{root / 'objective.py'}:score", "--evals", "8",
                 "-o", str(root / "search")]) == 0
    save_file({"w": torch.zeros(3)}, str(root / "other-arch.safetensors"), metadata={"step": "1"})
    (root / "garbage.npz").write_bytes(os.urandom(300))
    return {"root": root, "run": run, "ckpts": ckpts, "last": run / "last.safetensors", "coeffs": root / "coeffs.json",
            "obj": root / "objective.py", "search": root / "search", "other": root / "other-arch.safetensors",
            "npz": root / "garbage.npz"}


def _damage(name: str, text: str):
    """Setup: a copy of the finished search in ``tmp/s`` with ``name`` replaced by ``text`` (None: removed)."""
    def setup(tmp: Path, env: dict[str, Path]) -> None:
        shutil.copytree(env["search"], tmp / "s")
        if text is None:
            (tmp / "s" / name).unlink()
        else:
            (tmp / "s" / name).write_text(text)
    return setup


def _copy_search(tmp: Path, env: dict[str, Path]) -> None:
    shutil.copytree(env["search"], tmp / "s")


class _Payload:
    """A pickled object that would run a command when unpickled without ``weights_only``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _payload(tmp: Path, env: dict[str, Path]) -> None:
    """``tmp/evil``: the window's good checkpoints and, last, a .pt pickle with a payload (issue 36)."""
    shutil.copytree(env["ckpts"], tmp / "evil", ignore=shutil.ignore_patterns(".lcsc-cache"))
    torch.save({"w": torch.zeros(2), "step": 35, "x": _Payload(tmp / "PAYLOAD-RAN")}, tmp / "evil" / "ckpt-35.pt")


def _truncated(tmp: Path, env: dict[str, Path]) -> None:
    """``tmp/trunc``: the window's checkpoints, the last one cut in half (its header says more than it holds)."""
    shutil.copytree(env["ckpts"], tmp / "trunc", ignore=shutil.ignore_patterns(".lcsc-cache"))
    last = sorted((tmp / "trunc").glob("*.safetensors"))[-1]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])


def _truncated_snapshot(tmp: Path, env: dict[str, Path]) -> None:
    """``tmp/run``: a copy of the run with its last phema snapshot cut in half."""
    shutil.copytree(env["run"], tmp / "run", ignore=shutil.ignore_patterns(".lcsc-cache", "windows"))
    last = sorted((tmp / "run" / "phema").rglob("*.safetensors"))[-1]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])


TRAIN = "train dm --iterations 10 --batch-size 8 --channels 8 --sample-count 0"
SEARCH = "search {ckpts} --objective {obj}:score --evals 8"
# (id, command line, text the error line must hold: the offending file or value, setup of extra inputs or None)
CASES = [
    ("argparse-one-line", "train dm --model bogus -o {tmp}/out", "'bogus'", None),
    ("merge-device-index", "merge {ckpts} --coeffs {coeffs} -o {tmp}/out.safetensors --device cuda:99", "cuda:99", None),
    ("merge-device-bogus", "merge {ckpts} --coeffs {coeffs} -o {tmp}/out.safetensors --device bogus", "'bogus'", None),
    ("merge-out-under-file", "merge {ckpts} --coeffs {coeffs} -o {tmp}/afile/out.safetensors", "afile", None),
    ("merge-out-is-folder", "merge {ckpts} --coeffs {coeffs} -o {tmp}/folder.safetensors", "folder.safetensors",
     None),
    ("merge-coeffs-folder", "merge {ckpts} --coeffs {tmp}/folder.safetensors -o {tmp}/out.safetensors",
     "folder.safetensors", None),
    ("merge-coeffs-garbage", "merge {ckpts} --coeffs {tmp}/afile -o {tmp}/out.safetensors", "afile", None),
    ("inspect-missing", "inspect {tmp}/missing", "missing", None),
    ("inspect-cache-dir-file", "inspect {ckpts} --cache-dir {tmp}/afile", "afile", None),
    ("inspect-pickle-payload", "inspect {tmp}/evil", "ckpt-35.pt: refused", _payload),
    ("inspect-truncated", "inspect {tmp}/trunc", "truncated", _truncated),
    ("merge-pickle-payload", "merge {tmp}/evil --coeffs {coeffs} -o {tmp}/out/m.safetensors", "ckpt-35.pt: refused",
     _payload),
    ("merge-truncated", "merge {tmp}/trunc --coeffs {coeffs} -o {tmp}/m.safetensors", "000030.safetensors",
     _truncated),
    ("search-pickle-payload", "search {tmp}/evil --objective {obj}:score --evals 8 -o {tmp}/out",
     "ckpt-35.pt: refused", _payload),
    ("search-truncated", "search {tmp}/trunc --objective {obj}:score --evals 8 -o {tmp}/out", "000030.safetensors",
     _truncated),
    ("train-init-from-truncated", TRAIN + " --init-from {tmp}/trunc/ckpt-000000030.safetensors -o {tmp}/out",
     "000030.safetensors", _truncated),
    ("eval-pickle-payload", "eval {tmp}/evil/ckpt-35.pt --samples 4 --nfe 1 --metrics fd -o {tmp}/out/eval.json",
     "ckpt-35.pt", _payload),
    ("ema-truncated-snapshot", "ema {tmp}/run --sigma-rel 0.07 -o {tmp}/out/ema.safetensors", ".safetensors",
     _truncated_snapshot),
    ("search-out-is-file", SEARCH + " -o {tmp}/afile", "afile", None),
    ("search-out-under-file", SEARCH + " -o {tmp}/afile/out", "afile", None),
    ("search-half-lives-text", SEARCH + " --half-lives a,b -o {tmp}/out", "'a,b'", None),
    ("search-half-lives-negative", SEARCH + " --half-lives -3 -o {tmp}/out", "-3", None),
    ("search-groups-depth", SEARCH + " --groups prefix:x -o {tmp}/out", "prefix:x", None),
    ("search-generation-size", SEARCH + " --generation-size 0 -o {tmp}/out", "generation_size=0", None),
    ("search-max-time-nan", SEARCH + " --max-time nan -o {tmp}/out", "max_time=nan", None),
    ("search-init-coeffs-folder", SEARCH + " --init-coeffs {tmp}/folder.safetensors -o {tmp}/out",
     "folder.safetensors", None),
    ("search-objective-factory", "search {ckpts} --objective {obj}:broken --evals 8 -o {tmp}/out", "broken",
     None),
    ("search-over-journal", SEARCH + " --seed 5 -o {tmp}/s", "journal.jsonl", _copy_search),
    ("search-resume-args-garbage", "search --resume {tmp}/s", "search_args.json", _damage("search_args.json", "{x")),
    ("search-resume-args-keys", "search --resume {tmp}/s", "search_args.json",
     _damage("search_args.json", '{"objective": "x"}')),
    ("search-resume-no-journal", "search --resume {tmp}/s", "journal.jsonl", _damage("journal.jsonl", None)),
    ("train-lr-nan", TRAIN + " --lr nan -o {tmp}/out", "lr=nan", None),
    ("train-weight-decay-nan", TRAIN + " --weight-decay nan -o {tmp}/out", "nan", None),
    ("train-sample-nfe-zero", "train dm --iterations 10 --batch-size 8 --channels 8 --sample-count 4 "
     "--sample-nfe 0 -o {tmp}/out", "sample_nfe 0", None),
    ("train-device-bogus", TRAIN + " --device bogus -o {tmp}/out", "'bogus'", None),
    ("train-out-is-file", TRAIN + " -o {tmp}/afile", "afile", None),
    ("train-init-from-missing", TRAIN + " --init-from {tmp}/missing.safetensors -o {tmp}/out",
     "missing.safetensors", None),
    ("train-init-from-garbage", TRAIN + " --init-from {tmp}/garbage.safetensors -o {tmp}/out",
     "garbage.safetensors", None),
    ("train-init-from-other-arch", TRAIN + " --init-from {other} -o {tmp}/out", "other-arch.safetensors", None),
    ("train-data-garbage-npz", TRAIN + " --data {npz} -o {tmp}/out", "not an .npz archive", None),
    ("eval-samples-zero", "eval {last} --samples 0 -o {tmp}/out/eval.json", "--samples 0", None),
    ("eval-nfe-zero", "eval {last} --samples 2 --nfe 0 -o {tmp}/out/eval.json", "--nfe 0", None),
    ("eval-out-under-file", "eval {last} --samples 4 --nfe 1 --metrics fd -o {tmp}/afile/eval.json", "afile", None),
    ("ema-run-is-file", "ema {tmp}/afile --sigma-rel 0.07 -o {tmp}/out.safetensors", "afile", None),
    ("ema-tol-nan", "ema {run} --sigma-rel 0.07 --tol nan -o {tmp}/out.safetensors", "--tol", None),
    ("ema-out-under-file", "ema {run} --sigma-rel 0.07 -o {tmp}/afile/out.safetensors", "afile", None),
    ("ema-sweep-out-is-file", "ema {run} --sweep --sigma-rels 0.05,0.1 --samples 16 --nfe 1 -o {tmp}/afile", "afile",
     None),
    ("quickstart-out-is-file", "quickstart -o {tmp}/afile --iterations 60 --window 30 --interval 10", "afile", None),
    ("demo-interval-zero", "demo --quick --interval 0 -o {tmp}/out", "interval 0", None),
    ("demo-channels-zero", "demo --quick --channels 0 -o {tmp}/out", "channels 0", None),
    ("demo-search-evals", "demo --quick --dm-search-evals 0 -o {tmp}/out", "dm_search_evals 0", None),
    ("demo-out-is-file", "demo --quick -o {tmp}/afile", "afile", None),
]
NO_CUDA_CASES = [  # `--device cuda` where there is none: one line saying so, before any work
    ("merge-device-cuda", "merge {ckpts} --coeffs {coeffs} -o {tmp}/out.safetensors --device cuda", None),
    ("search-device-cuda", SEARCH + " --device cuda -o {tmp}/out", None),
    ("train-device-cuda", TRAIN + " --device cuda -o {tmp}/out", None),
    ("eval-device-cuda", "eval {last} --samples 4 --nfe 1 --device cuda -o {tmp}/out/eval.json", None),
    ("ema-device-cuda", "ema {run} --sweep --samples 16 --nfe 1 --device cuda -o {tmp}/out", None),
    ("demo-device-cuda", "demo --quick --device cuda -o {tmp}/out", None),
]


def _run_bad(command: str, env: dict[str, Path], tmp: Path, capsys, setup=None) -> str:
    """Run ``command`` on prepared bad inputs; check the house rule; return the error line."""
    (tmp / "afile").write_text("not a folder, not a checkpoint, not JSON\n")
    (tmp / "folder.safetensors").mkdir()
    (tmp / "garbage.safetensors").write_bytes(os.urandom(200))
    if setup is not None:
        setup(tmp, env)
    before = tree_snapshot(tmp, env["root"])  # the output location and every input, empty folders included
    argv = command.format(tmp=tmp, **env).split()
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"lcsc {argv[0]}: error: "), line
    assert "Traceback" not in err and "\x1b" not in line
    assert tree_snapshot(tmp, env["root"]) == before, "a refused command wrote, removed or changed files or folders"
    return line


@pytest.mark.parametrize(("command", "names", "setup"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(command, names, setup, env, tmp_path, capsys):
    line = _run_bad(command, env, tmp_path, capsys, setup)
    assert names in line, line


@NO_CUDA
@pytest.mark.parametrize(("command", "setup"), [c[1:] for c in NO_CUDA_CASES], ids=[c[0] for c in NO_CUDA_CASES])
def test_device_cuda_without_cuda(command, setup, env, tmp_path, capsys):
    line = _run_bad(command, env, tmp_path, capsys, setup)
    assert "--device 'cuda'" in line and "CUDA is not available" in line, line


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_coefficient_file(env, tmp_path, capsys):
    coeffs = tmp_path / "coeffs.json"
    shutil.copy(env["coeffs"], coeffs)
    coeffs.chmod(0)
    try:
        line = _run_bad(f"merge {{ckpts}} --coeffs {coeffs} -o {{tmp}}/out.safetensors", env, tmp_path, capsys)
    finally:
        coeffs.chmod(0o644)
    assert str(coeffs) in line and "ermission" in line


def _raising(exc: BaseException):
    def func(args):
        raise exc
    return func


def _main_with(monkeypatch, exc: BaseException) -> int:
    """``lcsc inspect`` whose command raises ``exc``."""
    monkeypatch.setattr(inspect_cmd, "run", _raising(exc))
    return main(["inspect", "x"])


@pytest.mark.parametrize(("exc", "line"), [
    (PermissionError(13, "Permission denied", "/data/ckpts"), "lcsc inspect: error: /data/ckpts: Permission denied"),
    (IsADirectoryError(21, "Is a directory", "/a", None, "/b"), "lcsc inspect: error: /a: Is a directory (with /b)"),
    (OSError("no file name"), "lcsc inspect: error: no file name"),
    (DiskFullError("/out/x.safetensors: cannot write: no space left on device; the previous file is unchanged"),
     "lcsc inspect: error: /out/x.safetensors: cannot write: no space left on device; the previous file is unchanged"),
])
def test_os_errors_become_one_line(exc, line, monkeypatch, capsys):
    assert _main_with(monkeypatch, exc) == 2
    assert capsys.readouterr().err == line + "\n"


def test_interrupt_and_bugs_keep_their_conventions(monkeypatch, capsys):
    assert _main_with(monkeypatch, KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "lcsc inspect: interrupted\n"
    with pytest.raises(ZeroDivisionError):  # a bug in lcsc: the traceback is kept for the report
        _main_with(monkeypatch, ZeroDivisionError("bug"))
