"""``lcsc eval`` on a trained run, and ``lcsc search`` with no objective flag on a window of that run."""

from __future__ import annotations

import json

import pytest

from lcsc.cli.main import main
from lcsc.objectives.base import HELD_OUT_SEED_OFFSET


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


def test_eval_defaults_to_held_out_noise_and_warns_on_search_noise(run_dir, tmp_path, capsys):
    ckpt, common = run_dir / "last.safetensors", ["--samples", "64", "--nfe", "1"]
    assert main(["eval", str(ckpt), *common, "-o", str(tmp_path / "default.json")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["eval", str(ckpt), *common, "--held-out", "-o", str(tmp_path / "held.json")]) == 0
    assert main(["eval", str(ckpt), *common, "--search-noise", "-o", str(tmp_path / "search.json")]) == 0
    err = capsys.readouterr().err
    assert sum("warning" in line for line in err.splitlines()) == 1 and "scoring on the search noise (seed 0)" in err
    default, held, search = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("default", "held", "search"))
    assert default["noise"] == "held-out" and default["noise_seed"] == HELD_OUT_SEED_OFFSET
    assert search["noise"] == "search" and search["noise_seed"] == 0
    assert default["rows"][0]["fd"] == held["rows"][0]["fd"] != search["rows"][0]["fd"]
    assert default["noise_sha"] != search["noise_sha"]
    with pytest.raises(SystemExit):
        main(["eval", str(ckpt), "--held-out", "--search-noise"])


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


def test_eval_reports_kid_x1e3_with_its_feature_space(run_dir, tmp_path, capsys, monkeypatch):
    import lcsc.metrics.evaluate

    monkeypatch.setattr(lcsc.metrics.evaluate, "kernel_inception_distance", lambda *a, **k: (0.00123, 0.0004))
    out = tmp_path / "kid.json"
    assert main(["eval", str(run_dir / "last.safetensors"), "--samples", "32", "--nfe", "1", "--metrics", "kid",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "KID×10³" in printed and "(all in digits)" in printed and "    1.230 " in printed
    row = json.loads(out.read_text())["rows"][0]
    assert row["kid_x1e3"] == pytest.approx(1.23) and row["kid_std_x1e3"] == pytest.approx(0.4)
    assert row["kid_features"] == "digits" and "kid" not in row and row["fd"] is None


def test_eval_with_bf16_autocast_records_it_and_stays_close(run_dir, tmp_path, capsys):
    ckpt, common = run_dir / "last.safetensors", ["--samples", "64", "--nfe", "2", "--metrics", "fd"]
    assert main(["eval", str(ckpt), *common, "-o", str(tmp_path / "fp32.json")]) == 0
    assert main(["eval", str(ckpt), *common, "--autocast", "bf16", "-o", str(tmp_path / "bf16.json")]) == 0
    assert "sampled under bf16 autocast" in capsys.readouterr().out
    fp32, bf16 = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("fp32", "bf16"))
    assert fp32["autocast"] == "off" and bf16["autocast"] == "bf16"
    a, b = fp32["rows"][0]["fd"], bf16["rows"][0]["fd"]
    assert a != b and abs(a - b) < 0.1 * a


def test_search_on_two_ray_workers_matches_serial(run_dir, tmp_path, one_thread):
    """The built-in calibrated objective (auto = mean of FD_digits and FD2) scored on 2 Ray workers, each owning its
    model, objective and stack: the same journal as a serial search on as many threads as a worker (1)."""
    pytest.importorskip("ray")
    from lcsc.search.journal import TIMING_FIELDS, Journal

    args = [str(run_dir / "windows/30"), "--evals", "8", "--generation-size", "4", "--samples", "32", "--nfe", "1"]
    assert main(["search", *args, "-o", str(tmp_path / "serial")]) == 0
    assert main(["search", *args, "--workers", "2", "-o", str(tmp_path / "ray")]) == 0
    recs = [[{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in Journal.load(p).records]
            for p in (tmp_path / "serial" / "journal.jsonl", tmp_path / "ray" / "journal.jsonl")]
    assert recs[0] == recs[1] and all(r["status"] == "ok" for r in recs[1])
    assert json.loads((tmp_path / "ray" / "held_out.json").read_text()) == \
        json.loads((tmp_path / "serial" / "held_out.json").read_text())


def test_search_autocast_is_recorded_and_resumed(run_dir, tmp_path, monkeypatch):
    from lcsc.cli import search_cmd
    from lcsc.search.journal import Journal

    out = tmp_path / "bf16"
    args = [str(run_dir / "windows/30"), "--objective", "fd-digits", "--evals", "6", "--generation-size", "3",
            "--samples", "32", "--nfe", "1"]
    assert main(["search", *args, "--autocast", "bf16", "-o", str(out)]) == 0
    assert Journal.load(out / "journal.jsonl").header["objective"]["autocast"] == "bf16"
    seen = []
    real = search_cmd.builtin_objective
    monkeypatch.setattr(search_cmd, "builtin_objective", lambda *a, **k: seen.append(k["autocast"]) or real(*a, **k))
    assert main(["search", "--resume", str(out), "--evals", "8"]) == 0
    assert seen == ["bf16"]
