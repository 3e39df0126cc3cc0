"""resolve_anchors: ema / ema:NAME / ema-start:NAME / phema:SIGMA / files, against a recorded run's window."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from lcsc.atomic import sha256_file
from lcsc.checkpoints import CheckpointStack
from lcsc.checkpoints.anchor_specs import resolve_anchors, resolve_recorded_anchors
from lcsc.checkpoints.anchors import state_dict_sha256
from lcsc.errors import CheckpointError
from tests.checkpoints.anchor_run import make_run, write_file
from tests.conftest import make_states


@pytest.fixture
def run(tmp_path: Path) -> dict:
    info = make_run(tmp_path)
    info["stack"] = CheckpointStack.open(info["window"], cache=False, progress=False)
    return info


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ema_specs(run) -> None:
    ema = run["run"] / "ema"
    got = resolve_anchors(["ema", "ema-start:hl-100", "phema:0.05"], run["window"], run["stack"])
    names = [a.name for a, _ in got]
    assert names == ["ema:hl-100", "ema:rate-0.9", "ema-start:hl-100", "phema:0.05"]
    (hl, hl_sd), (rate, rate_sd), (start, start_sd), (ph, ph_sd) = got
    assert _same(hl_sd, run["hl_end"]) and _same(rate_sd, run["rate_end"]) and _same(start_sd, run["hl_start"])
    assert _same(ph_sd, run["phema_500"])
    assert (hl.kind, hl.spec, hl.step, hl.ema_rate) == ("ema", "ema:hl-100", 500, pytest.approx(1 - 1 / 144.77))
    assert hl.sha256 == sha256_file(ema / "hl-100" / "ema-000000500.safetensors")
    assert (start.kind, start.step, start.source) == ("ema-start", 0, str(ema / "hl-100" / "ema-000000000.safetensors"))
    assert (rate.ema_rate, ph.kind, ph.step, ph.sha256) == (0.9, "phema", 500, state_dict_sha256(ph_sd))
    assert ph.source == f"post-hoc EMA sigma_rel=0.05 at step 500 of {run['run']}"
    # a list of window files works like the folder
    files = sorted(run["window"].glob("*.safetensors"))
    assert [a.sha256 for a, _ in resolve_anchors(["ema:rate-0.9"], files, run["stack"])] == [rate.sha256]
    stack = run["stack"].with_anchors(got)
    assert stack.K == 9 and stack.row_names[5:] == names


def test_file_specs_get_unique_names(run, tmp_path: Path) -> None:
    a, b = make_states(2, seed=30)
    fa = write_file(tmp_path / "x" / "best.safetensors", a, step=77)
    fb = write_file(tmp_path / "y" / "best.safetensors", b)
    got = resolve_anchors([str(fa), str(fb)], run["window"], run["stack"])
    assert [(x.name, x.kind, x.spec, x.step) for x, _ in got] == [("best", "file", str(fa), 77),
                                                                   ("best-2", "file", str(fb), 0)]
    assert _same(got[1][1], b)


@pytest.mark.parametrize("spec,match", [
    ("ema:nope", r"anchor 'ema:nope': no EMA named 'nope' in .*/ema; available: hl-100, rate-0.9"),
    ("ema-start:rate-0.9", r"ema-start:rate-0.9: .*/ema/rate-0.9 has no snapshot at step 0 \(the window's start\); "
                           r"record with a recorder that saves window-start EMA snapshots \(lcsc ≥ .*\) or use "
                           r"ema:rate-0.9"),
    ("ema-start:", r"ema-start needs NAME"),
    ("phema:abc", r"SIGMA must be a number"),
    ("phema:0.2", r"anchor 'phema:0.2': sigma_rel 0.2 is outside the reconstructable range"),
    ("missing.safetensors", r"anchor 'missing.safetensors': no such file or folder"),
])
def test_bad_specs(run, spec, match) -> None:
    with pytest.raises(CheckpointError, match=match) as info:
        resolve_anchors([spec], run["window"], run["stack"])
    assert "\n" not in str(info.value)


def test_missing_end_snapshot_and_folders(run) -> None:
    (run["run"] / "ema" / "rate-0.9" / "ema-000000500.safetensors").rename(
        run["run"] / "ema" / "rate-0.9" / "ema-000000400.safetensors")
    with pytest.raises(CheckpointError, match=r"ema:rate-0.9: .* no snapshot at step 500 \(the window's end\); its "
                                              r"snapshots are at steps \[400\]"):
        resolve_anchors(["ema:rate-0.9"], run["window"], run["stack"])
    shutil.rmtree(run["run"] / "phema")
    shutil.rmtree(run["run"] / "ema")
    for spec, sub in (("phema:0.05", "phema"), ("ema", "ema"), ("ema-start:hl-100", "ema")):
        with pytest.raises(CheckpointError, match=rf"anchor '{spec}': .*/run/{sub}: no such folder"):
            resolve_anchors([spec], run["window"], run["stack"])


def test_resolve_recorded(run, tmp_path: Path) -> None:
    fa = write_file(tmp_path / "best.safetensors", make_states(1, seed=40)[0])
    got = resolve_anchors(["ema:hl-100", str(fa)], run["window"], run["stack"])
    records = [a.to_json() for a, _ in got]
    records[1]["spec"] = "not/here.safetensors"  # a relative spec from another folder: the recorded source is used
    again = resolve_recorded_anchors(records, run["window"], run["stack"], source="C")
    assert [a.sha256 for a, _ in again] == [a.sha256 for a, _ in got]
    assert all(_same(x, y) for (_, x), (_, y) in zip(again, got))
    write_file(fa, make_states(1, seed=41)[0])
    with pytest.raises(CheckpointError, match=r"anchor 'best': .*best.safetensors has sha256 .* but C recorded"):
        resolve_recorded_anchors(records, run["window"], run["stack"], source="C")
    fa.unlink()
    with pytest.raises(CheckpointError, match=r"anchor 'best' recorded in C: anchor '.*best.safetensors': no such"):
        resolve_recorded_anchors(records, run["window"], run["stack"], source="C")
    with pytest.raises(CheckpointError, match="anchor 'x' in C has no recorded spec"):
        resolve_recorded_anchors([{"name": "x", "sha256": "0"}], run["window"], run["stack"], source="C")


def test_diffusers_run_ema_is_the_last_unet_ema(tmp_path: Path) -> None:
    """checkpoint-N/{unet,unet_ema}/diffusion_pytorch_model.safetensors, as the diffusers example loops save them."""
    from safetensors.torch import save_file

    states = make_states(4, seed=50)
    for n, raw, ema in ((2, states[0], states[1]), (4, states[2], states[3])):
        for sub, sd in (("unet", raw), ("unet_ema", ema)):
            (tmp_path / f"checkpoint-{n}" / sub).mkdir(parents=True)
            save_file(sd, str(tmp_path / f"checkpoint-{n}" / sub / "diffusion_pytorch_model.safetensors"))
    stack = CheckpointStack.open(tmp_path, cache=False, progress=False)
    assert stack.steps == [2, 4]
    for spec in ("ema", "ema:unet_ema"):
        [(anchor, sd)] = resolve_anchors([spec], [tmp_path], stack)
        assert (anchor.name, anchor.kind, anchor.step, anchor.spec) == ("ema:unet_ema", "ema", 4, "ema:unet_ema")
        assert anchor.sha256 == sha256_file(tmp_path / "checkpoint-4" / "unet_ema" / "diffusion_pytorch_model.safetensors")
        assert _same(sd, states[3])
    with pytest.raises(CheckpointError, match=r"has no ema_x/ .*EMA folders there: unet_ema"):
        resolve_anchors(["ema:ema_x"], tmp_path, stack)
    with pytest.raises(CheckpointError, match="window-start EMA snapshots exist only in runs recorded by lcsc"):
        resolve_anchors(["ema-start:unet_ema"], tmp_path, stack)
