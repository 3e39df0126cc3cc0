"""``lcsc train``: a real tiny run for DM and CM, resume by re-running, and bad input exiting 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lcsc.cli.main import build_parser, main
from lcsc.cli.train_cmd import config_from_args
from lcsc.models import load_model
from tests.faults import tree_snapshot
from tests.output import problem_lines

TINY = ["--iterations", "12", "--batch-size", "16", "--channels", "8", "--record-window", "6",
        "--record-interval", "3", "--sample-count", "4"]


@pytest.mark.parametrize("kind", ["dm", "cm"])
def test_train_writes_a_complete_run_folder(tmp_path, kind, capsys):
    out = tmp_path / kind
    assert main(["train", kind, "--data", "digits", *TINY, "--record-at", "6,12", "--ema-half-life", "2,4",
                 "-o", str(out)]) == 0
    assert "window" in capsys.readouterr().out
    for end, steps in {6: (3, 6), 12: (9, 12)}.items():
        assert sorted(p.name for p in (out / f"windows/{end}").glob("*.safetensors")) == \
            [f"ckpt-{s:09d}.safetensors" for s in steps]
    assert sorted(p.name for p in (out / "ema").iterdir()) == ["hl-2", "hl-4"]
    assert (out / "ema/hl-4/ema-000000012.safetensors").exists()
    assert (out / "samples.png").stat().st_size > 0 and (out / "log.jsonl").exists()
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["command"] == "train" and resolved["train"]["model"]["kind"] == kind
    assert load_model(out / "windows/12/ckpt-000000012.safetensors").config.kind == kind


def test_rerun_resumes_and_extends_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "dm", *TINY, "--sample-count", "0", "-o", str(out)]) == 0
    before = load_file(out / "last.safetensors")
    assert main(["train", "dm", *TINY, "--sample-count", "0", "-o", str(out)]) == 0
    assert "resuming" in capsys.readouterr().out
    after = load_file(out / "last.safetensors")
    assert all(torch.equal(after[k], v) for k, v in before.items())
    tree = tree_snapshot(tmp_path)
    assert main(["train", "dm", *TINY, "--no-resume", "-o", str(out)]) == 2
    assert main(["train", "dm", *TINY, "--lr", "0.5", "-o", str(out)]) == 2
    assert "cannot resume, the config changed in ['optim']" in capsys.readouterr().err
    assert tree_snapshot(tmp_path) == tree  # the run refused to be overwritten or resumed is as it was


def test_class_conditional_training(tmp_path):
    assert main(["train", "dm", *TINY, "--class-cond", "-o", str(tmp_path)]) == 0
    assert load_model(tmp_path / "last.safetensors").config.num_classes == 10


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "nowhere/"], "nowhere"),
        (["--mode", "cd"], "needs a teacher"),
        (["--record-at", "50"], "outside the run"),
        (["--ema-half-life", "ten"], "--ema-half-life"),
        (["--disk-budget", "10KB"], "disk budget"),
        (["--timesteps", "nope"], "unknown timestep sampler"),
    ],
)
def test_bad_input_exits_2_with_one_message(tmp_path, capsys, extra, message):
    kind = "cm" if "--mode" in extra else "dm"
    before = tree_snapshot(tmp_path)
    assert main(["train", kind, *TINY, *extra, "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(problem_lines(err)) == 1
    assert tree_snapshot(tmp_path) == before  # no run folder, empty or not


def test_unlabelled_npz_data_and_class_cond_error(tmp_path, capsys):
    data = tmp_path / "imgs.npz"
    np.savez(data, np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8))
    assert main(["train", "dm", *TINY, "--sample-count", "0", "--data", str(data), "-o", str(tmp_path / "r")]) == 0
    assert load_model(Path(tmp_path / "r/last.safetensors")).config.in_channels == 3
    before = tree_snapshot(tmp_path)
    assert main(["train", "dm", *TINY, "--class-cond", "--data", str(data), "-o", str(tmp_path / "r2")]) == 2
    assert "has no class labels" in capsys.readouterr().err
    assert tree_snapshot(tmp_path) == before


def test_faster_training_flags(tmp_path):
    out = tmp_path / "fast"
    assert main(["train", "dm", *TINY, "--sample-count", "0", "--timesteps", "clts", "--clts-mu", "0.4",
                 "--clts-target", "6", "--loss-weighting", "minsnr", "--minsnr-gamma", "3", "--momentum", "mdlrc",
                 "--beta-min", "0.7", "--decay-steps", "5", "-o", str(out)]) == 0
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["timestep_sampler"] == "clts" and saved["clts_mu"] == 0.4 and saved["minsnr_gamma"] == 3
    assert saved["optim"]["schedule"] == "mdlrc" and saved["optim"]["beta_min"] == 0.7
    assert saved["optim"]["decay_steps"] == 5
    before = tree_snapshot(tmp_path)
    assert main(["train", "dm", *TINY, "--momentum", "adamw-ish", "-o", str(tmp_path / "bad")]) == 2
    assert tree_snapshot(tmp_path) == before


def test_target_ema_flag_reaches_the_config(tmp_path, capsys):
    """--target-ema MU sets ConsistencyConfig.target_ema (default 0); out of range, or on a DM, exits 2 in one line."""
    args = build_parser().parse_args(["train", "cm", "--target-ema", "0.95", "-o", str(tmp_path)])
    assert config_from_args(args).consistency.target_ema == 0.95
    default = build_parser().parse_args(["train", "cm", "-o", str(tmp_path)])
    assert config_from_args(default).consistency.target_ema == 0.0
    before = tree_snapshot(tmp_path)
    for kind, value, message in [("cm", "1.5", "--target-ema) 1.5 must be in [0, 1)"),
                                 ("cm", "-0.1", "must be in [0, 1)"), ("dm", "0.9", "--target-ema is for")]:
        assert main(["train", kind, *TINY, "--target-ema", value, "-o", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(problem_lines(err)) == 1, err
        assert tree_snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Tiny runs to distil from: a digits DM, a digits CM, a DM on 3-channel 8×8 data, a DM on 16×16 digits and a DM
    on another 8×8 grey data set."""
    root = tmp_path_factory.mktemp("teachers")
    rgb, grey = root / "rgb.npz", root / "grey.npz"
    rng = np.random.default_rng(0)
    np.savez(rgb, rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8))
    np.savez(grey, rng.integers(0, 255, (40, 8, 8, 1), dtype=np.uint8))
    runs = {"dm": ("dm", []), "cm": ("cm", []), "rgb": ("dm", ["--data", str(rgb)]),
            "res16": ("dm", ["--resolution", "16"]), "other-data": ("dm", ["--data", str(grey)])}
    for name, (kind, extra) in runs.items():
        assert main(["train", kind, *TINY, "--sample-count", "0", *extra, "-o", str(root / name)]) == 0
    return {name: root / name / "last.safetensors" for name in runs}


@pytest.mark.parametrize("teacher, message", [
    ("missing", "no such checkpoint file"),
    ("cm", "must be a DM for 1×8² images (it is a cm"),
    ("rgb", "must be a DM for 1×8² images (it is a dm for 3×8²"),
    ("res16", "must be a DM for 1×8² images (it is a dm for 1×16²"),
    ("other-data", "not on the student's data digits (1797 images)"),
])
def test_cd_with_a_wrong_teacher_exits_2_in_one_line_and_writes_nothing(tmp_path, capsys, teachers, teacher, message):
    path = teachers.get(teacher, tmp_path / "nope.safetensors")
    out = tmp_path / "student"
    before = tree_snapshot(tmp_path, path.parent)  # the output location and the teacher's run
    assert main(["train", "cm", *TINY, "--mode", "cd", "--teacher", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(problem_lines(err)) == 1, err
    assert tree_snapshot(tmp_path, path.parent) == before


def test_cd_from_a_digits_teacher_trains(tmp_path, teachers):
    out = tmp_path / "student"
    assert main(["train", "cm", *TINY, "--sample-count", "0", "--mode", "cd", "--teacher", str(teachers["dm"]),
                 "-o", str(out)]) == 0
    assert load_model(out / "last.safetensors").config.kind == "cm"
