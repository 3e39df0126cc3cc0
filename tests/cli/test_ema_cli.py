"""``lcsc ema``: post-hoc EMA from a tiny recorded run — a file per target, exact stored profiles, clear errors,
and a σ_rel sweep with a user objective."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from lcsc.checkpoints.format import read_metadata
from lcsc.cli.main import main
from lcsc.merge import PosthocEMA
from lcsc.models import load_model
from tests.faults import tree_snapshot
from tests.output import problem_lines

pytestmark = pytest.mark.usefixtures("one_thread")

ITERATIONS = 48
OBJECTIVE = """
direction = "minimize"


def score(state_dict):
    return float(sum(v.double().pow(2).sum() for v in state_dict.values() if v.is_floating_point()))
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """``lcsc train dm`` for 48 steps with power EMAs at σ_rel 0.05 / 0.10 every 4 steps."""
    out = tmp_path_factory.mktemp("ema-cli") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only stall when the cores are busy
    try:
        assert main(["train", "dm", "--iterations", str(ITERATIONS), "--batch-size", "8", "--channels", "8",
                     "--record-window", "4", "--record-interval", "4", "--sample-count", "0",
                     "--phema-sigma-rels", "0.05,0.10", "--phema-every", "4", "-o", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_train_records_phema_snapshots(run_dir):
    for name in ("sigma-0.050", "sigma-0.100"):
        assert sorted(p.name for p in (run_dir / "phema" / name).iterdir()) == \
            [f"phema-{s:09d}.safetensors" for s in range(4, ITERATIONS + 1, 4)]
    resolved = json.loads((run_dir / "config.json").read_text())
    assert resolved["train"]["record"]["phema_sigma_rels"] == [0.05, 0.1]
    assert resolved["train"]["record"]["phema_every"] == 4


def test_sigma_rel_writes_a_loadable_checkpoint(run_dir, tmp_path, capsys):
    out = tmp_path / "ema07.safetensors"
    assert main(["ema", str(run_dir), "--sigma-rel", "0.07", "-o", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "profile error" in line and "Σx = " in line
    meta = read_metadata(out)
    assert meta["step"] == str(ITERATIONS) and float(meta["posthoc_sigma_rel"]) == 0.07
    assert float(meta["profile_error"]) < 0.05 and len(json.loads(meta["snapshots"])) == 2 * ITERATIONS // 4
    assert json.loads(meta["config"])["kind"] == "dm" and "data" in meta
    assert load_model(out).config.channels == 8
    resolved = json.loads((tmp_path / "ema07.config.json").read_text())
    assert resolved["command"] == "ema" and resolved["options"]["sigma_rel"] == 0.07
    assert resolved["reconstruction"]["step"] == ITERATIONS
    want = PosthocEMA.open(run_dir).reconstruct(ITERATIONS, sigma_rel=0.07)
    got = load_file(out)
    assert all(torch.equal(got[k], v) for k, v in want.items())


def test_stored_sigma_rel_is_exact(run_dir, tmp_path):
    out = tmp_path / "exact.safetensors"
    assert main(["ema", str(run_dir), "--sigma-rel", "0.05", "--step", "12", "-o", str(out)]) == 0
    got, stored = load_file(out), load_file(run_dir / "phema/sigma-0.050/phema-000000012.safetensors")
    assert got.keys() == stored.keys() and all(torch.equal(got[k], stored[k]) for k in stored)
    assert read_metadata(out)["step"] == "12" and float(read_metadata(out)["profile_error"]) == 0.0


def test_half_life_inside_the_range(run_dir, tmp_path, capsys):
    lo, hi = PosthocEMA.open(run_dir).half_life_range(ITERATIONS)
    half_life = float(f"{(lo * hi) ** 0.5:.3f}")
    out = tmp_path / "hl.safetensors"
    assert main(["ema", str(run_dir), "--half-life", str(half_life), "-o", str(out)]) == 0
    meta = read_metadata(out)
    assert float(meta["posthoc_half_life"]) == pytest.approx(half_life, rel=1e-12)
    # the online EMA's share on the initial weights, 0.5^(T/H), is left out of the target and the rest renormalised
    share = 0.5 ** (ITERATIONS / half_life)
    assert float(meta["posthoc_initial_share"]) == pytest.approx(share, rel=1e-12)
    text = capsys.readouterr().out
    assert f"without its {100 * share:.1f} % share on the initial weights, renormalised" in text
    resolved = json.loads((tmp_path / "hl.config.json").read_text())
    assert resolved["reconstruction"]["initial_share"] == pytest.approx(share, rel=1e-12)


def test_half_life_help_says_what_the_target_is(capsys):
    with pytest.raises(SystemExit):
        main(["ema", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "without its share on the initial weights" in text and "renormalised" in text


@pytest.mark.parametrize("args, message", [
    (["--sigma-rel", "0.27"], r"outside the reconstructable range \[0\.\d{4}, 0\.\d{4}\] at step 48 .*"
                              r"stored sigma_rels 0\.05, 0\.1"),
    (["--sigma-rel", "0.5"], re.escape("must be in (0, 0.2887)")),
    (["--sigma-rel", "0.07", "--step", "52"], re.escape("outside the snapshots' steps [4, 48]")),
    (["--sigma-rel", "0.07", "--half-life", "3"], "exactly one of --sigma-rel, --half-life and --sweep"),
    ([], "exactly one of"),
])
def test_bad_input_exits_2_with_one_message(run_dir, tmp_path, capsys, args, message):
    out = tmp_path / "bad.safetensors"
    before = tree_snapshot(tmp_path, run_dir)
    assert main(["ema", str(run_dir), *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(problem_lines(err)) == 1 and problem_lines(err)[0].startswith("lcsc ema: error:")
    assert tree_snapshot(tmp_path, run_dir) == before


def test_run_without_snapshots(tmp_path, capsys):
    before = tree_snapshot(tmp_path)
    assert main(["ema", str(tmp_path), "--sigma-rel", "0.07", "-o", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "phema") in err and "--phema-sigma-rels" in err
    assert tree_snapshot(tmp_path) == before


def _objective(tmp_path) -> str:
    path = tmp_path / "objective.py"
    path.write_text(OBJECTIVE)
    return f"{path}:score"


def test_sweep_default_grid(run_dir, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["ema", str(run_dir), "--sweep", "--objective", _objective(tmp_path), "-o", str(out)]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    lo, hi = PosthocEMA.open(run_dir).sigma_rel_range(ITERATIONS)
    sigmas = [r["sigma_rel"] for r in sweep["rows"]]
    assert len(sigmas) == 16 and sigmas[0] == pytest.approx(lo) and sigmas[-1] == pytest.approx(hi)
    scores = [r["score"] for r in sweep["rows"]]
    best = scores.index(min(scores))
    assert sweep["best"]["sigma_rel"] == sigmas[best]
    assert sweep["best_on_edge"] == {0: "lower", 15: "upper"}.get(best)
    assert (out / "sweep.png").stat().st_size > 0 and (out / "config.json").exists()
    best_sd = load_file(out / "best.safetensors")
    want = PosthocEMA.open(run_dir).reconstruct(ITERATIONS, sigma_rel=sigmas[best])
    assert all(torch.equal(best_sd[k], v) for k, v in want.items())
    stdout = capsys.readouterr().out
    assert f"best σ_rel {sigmas[best]:.4g}" in stdout and ("edge" in stdout) == (best in (0, 15))


def test_sweep_explicit_values_and_a_bad_grid(run_dir, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["ema", str(run_dir), "--sweep", "--sigma-rels", "0.06,0.05,0.08", "--step", "20",
                 "--objective", _objective(tmp_path), "-o", str(out)]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert [r["sigma_rel"] for r in sweep["rows"]] == [0.05, 0.06, 0.08] and sweep["step"] == 20
    assert sweep["rows"][0]["profile_error"] == 0.0
    objective = _objective(tmp_path)
    before = tree_snapshot(tmp_path, run_dir)
    assert main(["ema", str(run_dir), "--sweep", "--grid", "0.01:0.28:4", "--objective", objective,
                 "-o", str(tmp_path / "bad")]) == 2
    assert "reconstructable range" in capsys.readouterr().err
    assert main(["ema", str(run_dir), "--sweep", "--grid", "0.1:0.05:4", "-o", str(tmp_path / "bad")]) == 2
    assert "LO < HI" in capsys.readouterr().err
    assert tree_snapshot(tmp_path, run_dir) == before


def test_sweep_with_the_default_builtin_objective(run_dir, tmp_path):
    """``auto`` on digits is the calibrated mean of FD_digits and FD_digits2: calibrated on the grid itself, so the
    best grid point scores exactly 1."""
    out = tmp_path / "sweep"
    assert main(["ema", str(run_dir), "--sweep", "--sigma-rels", "0.05,0.08", "--samples", "32", "--nfe", "2",
                 "-o", str(out)]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["objective"] == "mean:fd_digits,fd_digits2" and len(sweep["rows"]) == 2
    assert min(r["score"] for r in sweep["rows"]) == 1.0 and sweep["best"]["score"] == 1.0
