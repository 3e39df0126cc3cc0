"""``--anchor`` on ``lcsc search`` and ``lcsc merge``: a search with anchors, rebuilt bit for bit by ``lcsc merge``;
resume keeps the anchors; bad anchors are one line, exit 2, nothing written."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lcsc.cli import search_cmd
from lcsc.cli.main import main
from tests.checkpoints.anchor_run import make_run, write_file
from tests.cli.test_cli_errors import OBJECTIVE, _run_bad
from tests.conftest import make_states

pytestmark = pytest.mark.usefixtures("one_thread")

ANCHORS = ["--anchor", "ema", "--anchor", "ema-start:hl-100", "--anchor", "phema:0.05", "--anchor", "{file}"]
NAMES = ["ema:hl-100", "ema:rate-0.9", "ema-start:hl-100", "phema:0.05", "best"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, Path]:
    """A recorded run, bad anchor files, and a finished search with five anchors."""
    root = tmp_path_factory.mktemp("anchor-cli")
    info = make_run(root)
    (root / "objective.py").write_text(OBJECTIVE)
    good = write_file(root / "files" / "best.safetensors", make_states(1, seed=60)[0], step=450)
    bad = make_states(1, seed=61)[0]
    write_file(root / "files" / "other-arch.safetensors", {**bad, "extra.weight": torch.zeros(3)})
    write_file(root / "files" / "half.safetensors", {k: v.half() if v.is_floating_point() else v for k, v in bad.items()})
    write_file(root / "files" / "nan.safetensors", {**bad, "3.bias": torch.full((10,), float("nan"))})
    env = {"root": root, "window": info["window"], "run": info["run"], "obj": root / "objective.py",
           "file": good, "search": root / "search", "files": root / "files"}
    anchors = [a.format(**env) for a in ANCHORS]
    assert main(["search", str(env["window"]), "--objective", f"{env['obj']}:score", "--evals", "12", *anchors,
                 "-o", str(env["search"])]) == 0
    return env


def _tensors_equal(a: Path, b: Path) -> None:
    x, y = load_file(str(a)), load_file(str(b))
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_search_records_anchors_and_merge_rebuilds_bit_for_bit(env, tmp_path: Path) -> None:
    s = env["search"]
    coeffs = json.loads((s / "best_coefficients.json").read_text())
    assert [a["name"] for a in coeffs["anchors"]] == NAMES and len(coeffs["coefficients"]) == 10
    assert [a["spec"] for a in coeffs["anchors"]] == [*NAMES[:4], str(env["file"])]
    card = json.loads((s / "provenance.json").read_text())
    assert [c["step"] for c in card["checkpoints"]] == [100, 200, 300, 400, 500]
    assert (card["window"], card["interval"]) == (500, 100)
    assert [(a["name"], a["kind"]) for a in card["anchors"]] == list(zip(NAMES, ["ema", "ema", "ema-start", "phema",
                                                                                 "file"]))
    assert all(len(a["sha256"]) == 64 and a["source"] for a in card["anchors"])
    md = (s / "provenance.md").read_text()
    assert "## Anchors" in md and "| 9 | `best` | file |" in md and "5 anchors after them" in md
    assert json.loads((s / "search_args.json").read_text())["anchor"] == [a.format(**env) for a in ANCHORS[1::2]]
    with safe_open(str(s / "merged.safetensors"), "pt") as fh:
        assert [a["name"] for a in json.loads(fh.metadata()["lcsc_anchors"])] == NAMES
    out = tmp_path / "m.safetensors"  # anchors resolved from the coefficient file's recorded specs and hashes
    assert main(["merge", str(env["window"]), "--coeffs", str(s / "best_coefficients.json"), "-o", str(out)]) == 0
    _tensors_equal(out, s / "merged.safetensors")
    assert [a["name"] for a in json.loads((tmp_path / "m.config.json").read_text())["anchors"]] == NAMES
    again = tmp_path / "again.safetensors"  # the same anchors given explicitly
    anchors = [a.format(**env) for a in ANCHORS]
    assert main(["merge", str(env["window"]), "--coeffs", str(s / "best_coefficients.json"), *anchors,
                 "-o", str(again)]) == 0
    _tensors_equal(again, s / "merged.safetensors")


def test_resume_takes_the_saved_anchors(env, tmp_path: Path) -> None:
    shutil.copytree(env["search"], tmp_path / "s")
    assert main(["search", "--resume", str(tmp_path / "s"), "--evals", "16"]) == 0
    lines = (tmp_path / "s" / "journal.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["K"] == 10 and len(lines) == 17
    best = json.loads((tmp_path / "s" / "best_coefficients.json").read_text())
    assert [a["name"] for a in best["anchors"]] == NAMES


def _coeffs_with(change):
    """Setup: the search's coefficient file copied to ``tmp/c.json`` with its anchors changed."""
    def setup(tmp: Path, env: dict[str, Path]) -> None:
        obj = json.loads((env["search"] / "best_coefficients.json").read_text())
        change(obj)
        (tmp / "c.json").write_text(json.dumps(obj))
    return setup


def _sha(obj):
    obj["anchors"][1]["sha256"] = "0" * 64


def _moved_file(obj):
    obj["anchors"][4].update(spec="gone/best.safetensors", source="/nonexistent/best.safetensors")


def _no_anchors(obj):
    del obj["anchors"]
    obj["coefficients"] = obj["coefficients"][:5]
    total = sum(obj["coefficients"])
    obj["coefficients"] = [c / total for c in obj["coefficients"]]


SEARCH = "search {window} --objective {obj}:score --evals 8 -o {tmp}/out --anchor "
MERGE = "merge {window} --coeffs {search}/best_coefficients.json -o {tmp}/m.safetensors"
CASES = [
    ("other-architecture", SEARCH + "{files}/other-arch.safetensors", "another architecture", None),
    ("other-dtype", SEARCH + "{files}/half.safetensors", "dtype float16 vs float32", None),
    ("nan", SEARCH + "{files}/nan.safetensors", "contains NaN/Inf in tensor '3.bias'", None),
    ("no-start-snapshot", SEARCH + "ema-start:rate-0.9", "has no snapshot at step 0 (the window's start)", None),
    ("unknown-ema", SEARCH + "ema:hl-7", "available: hl-100, rate-0.9", None),
    ("duplicate", SEARCH + "ema:hl-100 --anchor {run}/ema/hl-100/ema-000000500.safetensors", "same content", None),
    ("init-coeffs-with-anchors", "search {window} --objective {obj}:score --evals 8 -o {tmp}/out --init-coeffs "
     "{search}/best_coefficients.json", "names anchors ['ema:hl-100', 'ema:rate-0.9', 'ema-start:hl-100', "
     "'phema:0.05', 'best'] but the stack has none; pass --anchor ema:hl-100 --anchor ema:rate-0.9", None),
    ("resume-other-anchors", "search --resume {tmp}/s --anchor ema", "different --anchor", "copy"),
    ("merge-fewer-anchors", MERGE + " --anchor ema:hl-100",
     "best_coefficients.json names anchors ['ema:hl-100', 'ema:rate-0.9', 'ema-start:hl-100', 'phema:0.05', 'best'] "
     "but the stack has anchors ['ema:hl-100']", None),
    ("merge-other-anchor", MERGE + " --anchor ema:rate-0.9", "anchor 1 is 'ema:hl-100' but the stack's", None),
    ("merge-changed-anchor", "merge {window} --coeffs {tmp}/c.json -o {tmp}/m.safetensors",
     "anchor 'ema:rate-0.9': ", _coeffs_with(_sha)),
    ("merge-missing-anchor-file", "merge {window} --coeffs {tmp}/c.json -o {tmp}/m.safetensors",
     "anchor 'best' recorded in", _coeffs_with(_moved_file)),
    ("merge-anchors-not-in-file", "merge {window} --coeffs {tmp}/c.json --anchor ema -o {tmp}/m.safetensors",
     "names no anchors but the stack has anchors", _coeffs_with(_no_anchors)),
]


@pytest.mark.parametrize(("command", "names", "setup"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_anchor_input_is_one_line(command, names, setup, env, tmp_path, capsys):
    if setup == "copy":
        def setup(tmp: Path, env: dict[str, Path]) -> None:
            shutil.copytree(env["search"], tmp / "s")
    line = _run_bad(command, env, tmp_path, capsys, setup)
    assert names in line, line


def test_held_out_last_checkpoint_is_the_last_window_checkpoint(env, monkeypatch) -> None:
    """The held-out report's "last checkpoint" row puts its 1 at row K_window − 1, never on an anchor."""
    seen = {}
    held = type("Held", (), {"noise_seed": 99})()
    monkeypatch.setattr(search_cmd, "cross_space_objectives", lambda *a, **k: {"digits": [held]})
    monkeypatch.setattr(search_cmd, "cross_space_report", lambda objectives, states: seen.update(states) or [])
    args = argparse.Namespace(**json.loads((env["search"] / "search_args.json").read_text()))
    args.checkpoints = [Path(p) for p in args.checkpoints]
    args.resume = None
    merger = search_cmd._merger(args)
    assert (merger.K, merger.K_window) == (10, 5)
    best = np.full(10, 0.1)
    result = type("R", (), {"best": best, "best_initial": best, "best_initial_name": "ema"})()
    out = search_cmd._held_out_report(args, merger, result)
    assert out == {"seed": 99, "spaces": {}}
    last = seen["last checkpoint (step 500)"]
    want = load_file(str(env["window"] / "ckpt-000000500.safetensors"))
    assert all(torch.equal(last[k], want[k]) for k in want)
