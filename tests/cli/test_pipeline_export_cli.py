"""``lcsc merge --model-config`` and ``lcsc search --model-config`` on a diffusers run also write the merge as a
pipeline (NAME-pipeline/ beside -o, OUT/pipeline/) that DDPMPipeline.from_pretrained loads, its UNet bit for bit
the merged checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lcsc.cli import search_cmd
from lcsc.cli.main import main
from tests.diffusers_run import synthetic_images, train_run, write_image_folder
from tests.faults import tree_snapshot

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("pipeline-export")
    saved = train_run(root / "run", (2, 4, 6), pipeline=True)
    return root / "run", saved


def _pipeline_unet(folder: Path) -> dict[str, torch.Tensor]:
    from diffusers import DDPMPipeline

    pipe = DDPMPipeline.from_pretrained(str(folder))
    assert type(pipe.scheduler).__name__ == "DDPMScheduler"
    return pipe.unet.state_dict()


def _assert_bitwise(got: dict[str, torch.Tensor], merged: dict[str, torch.Tensor]) -> None:
    assert got.keys() == merged.keys()
    assert all(got[k].dtype == merged[k].dtype and torch.equal(got[k], merged[k]) for k in merged)


def test_merge_writes_a_pipeline_beside_the_merged_file(run, tmp_path, capsys) -> None:
    run_dir, saved = run
    coeffs = tmp_path / "coeffs.json"
    coeffs.write_text(json.dumps({"steps": [2, 4, 6], "coefficients": [0.25, 0.25, 0.5]}))
    out = tmp_path / "out" / "best.safetensors"
    assert main(["merge", str(run_dir), "--coeffs", str(coeffs), "-o", str(out), "--model-config", str(run_dir)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    pipeline = tmp_path / "out" / "best-pipeline"
    assert line == (f"pipeline: {pipeline}/ (DDPMPipeline: the merged UNet + DDPMScheduler); load it with "
                    f"DDPMPipeline.from_pretrained(\"{pipeline}\")")
    merged = load_file(str(out))
    _assert_bitwise(_pipeline_unet(pipeline), merged)
    for k in merged:  # and it is the merge asked for
        expected = 0.25 * saved[2][k] + 0.25 * saved[4][k] + 0.5 * saved[6][k]
        assert torch.allclose(merged[k], expected, atol=1e-6, rtol=0)
    assert json.loads((pipeline / "scheduler" / "scheduler_config.json").read_text()) == \
        json.loads((run_dir / "scheduler" / "scheduler_config.json").read_text())


def test_merge_without_model_config_writes_no_pipeline_and_a_bad_one_writes_nothing(run, tmp_path, capsys) -> None:
    run_dir, _ = run
    coeffs = tmp_path / "coeffs.json"
    coeffs.write_text(json.dumps({"steps": [2, 4, 6], "coefficients": [0, 0, 1]}))
    assert main(["merge", str(run_dir), "--coeffs", str(coeffs), "-o", str(tmp_path / "a" / "m.safetensors")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["m.config.json", "m.safetensors"]
    assert "pipeline" not in capsys.readouterr().out
    bad = tmp_path / "nowhere"
    before = tree_snapshot(tmp_path, run_dir)
    code = main(["merge", str(run_dir), "--coeffs", str(coeffs), "-o", str(tmp_path / "b" / "m.safetensors"),
                 "--model-config", str(bad)])
    assert code == 2 and f"model config {bad}: no such file or folder" in capsys.readouterr().err
    assert tree_snapshot(tmp_path, run_dir) == before


def test_search_writes_out_pipeline_loading_as_its_merge(run, tmp_path, capsys, monkeypatch) -> None:
    run_dir, _ = run
    # the held-out report (FD_inception of three rows: 2048-d matrix square roots) is another test's subject
    monkeypatch.setattr(search_cmd, "_held_out_report", lambda *args: None)
    ref = write_image_folder(tmp_path / "reference", synthetic_images(4, seed=5))
    out = tmp_path / "out"
    code = main(["search", str(run_dir), "--model-config", str(run_dir), "--reference", str(ref), "--objective",
                 "kid", "--scheduler", "ddim", "--nfe", "1", "--samples", "3", "--evals", "1", "--half-lives", "2",
                 "-o", str(out)])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == (f"pipeline: {out / 'pipeline'}/ (DDPMPipeline: the merged UNet + DDPMScheduler); load it "
                         f"with DDPMPipeline.from_pretrained(\"{out / 'pipeline'}\")")
    _assert_bitwise(_pipeline_unet(out / "pipeline"), load_file(str(out / "merged.safetensors")))
