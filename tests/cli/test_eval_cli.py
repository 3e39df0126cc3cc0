"""``lcsc eval`` on a trained run, and ``lcsc search`` with no objective flag on a window of that run."""

from __future__ import annotations

import json

import pytest

from lcsc.cli.main import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "dm", "--iterations", "30", "--batch-size", "32", "--channels", "8", "--record-window",
                 "20", "--record-interval", "5", "--sample-count", "0", "-o", str(out)]) == 0
    return out


def test_eval_run_folder_table_json_and_grids(run_dir, capsys):
    assert main(["eval", str(run_dir), "--samples", "64", "--nfe", "2", "--metrics", "fd,kid,pr,is"]) == 0
    out = capsys.readouterr().out
    assert "features digits" in out and "last.safetensors" in out
    data = json.loads((run_dir / "eval.json").read_text())
    names = [r["checkpoint"].split("/")[-1] for r in data["rows"]]
    assert names == ["last.safetensors", "ema-000000030.safetensors", "ema-000000030.safetensors"]
    row = data["rows"][0]
    assert row["fd"] > 0 and 0 <= row["precision"] <= 1 and row["inception_score"] >= 1
    assert (run_dir / "eval-samples").is_dir() and (run_dir / "eval.config.json").is_file()


def test_eval_held_out_seed_changes_scores(run_dir, tmp_path):
    ckpt = run_dir / "last.safetensors"
    assert main(["eval", str(ckpt), "--samples", "64", "--nfe", "1", "-o", str(tmp_path / "a.json")]) == 0
    assert main(["eval", str(ckpt), "--samples", "64", "--nfe", "1", "--held-out", "-o", str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text())["rows"][0]["fd"] for n in "ab")
    assert a != b


def test_eval_bad_input(run_dir, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "no such checkpoint file or run folder" in capsys.readouterr().err
    assert main(["eval", str(run_dir / "last.safetensors"), "--metrics", "fid"]) == 2
    assert "choose from fd, kid, pr, is" in capsys.readouterr().err


def test_search_window_with_no_objective_flag(run_dir, tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["search", str(run_dir / "windows/30"), "--evals", "6", "--generation-size", "3", "--samples", "32",
                 "--nfe", "1", "-o", str(out)]) == 0
    card = (out / "provenance.json").read_text()
    assert "fd_digits" in card
