"""``export_pipeline``: a merged UNet written as a diffusers pipeline that from_pretrained loads, bit for bit, written
atomically; the run's pipeline (class, scheduler) kept, or a DDPMPipeline from a UNet config alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import lcsc.checkpoints.diffusers_export as export_mod
from lcsc.checkpoints.diffusers_export import export_pipeline, merge_pipeline_path
from lcsc.errors import ConfigError
from tests.diffusers_run import TINY_UNET, tiny_unet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A run's final pipeline (model_index.json, unet/, scheduler/) and checkpoint-4/unet/ (save_pretrained), and
    a merge of two UNets."""
    from diffusers import DDPMPipeline, DDPMScheduler

    out = tmp_path_factory.mktemp("export") / "run"
    first, last = tiny_unet(seed=1), tiny_unet(seed=2)
    DDPMPipeline(unet=last, scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(str(out))
    last.save_pretrained(str(out / "checkpoint-4" / "unet"))
    a, b = first.state_dict(), last.state_dict()
    return out, {k: 0.25 * a[k] + 0.75 * b[k] for k in b}


def _load(folder: Path):
    from diffusers import DDPMPipeline

    return DDPMPipeline.from_pretrained(str(folder))


def _assert_bitwise(unet, merged: dict[str, torch.Tensor]) -> None:
    state = unet.state_dict()
    assert state.keys() == merged.keys()
    assert all(state[k].dtype == merged[k].dtype and torch.equal(state[k], merged[k]) for k in merged)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_pipeline_folder_keeps_its_class_and_scheduler(run, tmp_path) -> None:
    run_dir, merged = run
    export = export_pipeline(merged, run_dir, tmp_path / "pipeline")
    assert (export.path, export.pipeline_class, export.scheduler_class) == (tmp_path / "pipeline", "DDPMPipeline",
                                                                           "DDPMScheduler")
    assert export.scheduler_source == str(run_dir / "scheduler" / "scheduler_config.json")
    assert sorted(p.name for p in (tmp_path / "pipeline").iterdir()) == ["model_index.json", "scheduler", "unet"]
    assert (tmp_path / "pipeline" / "model_index.json").read_bytes() == (run_dir / "model_index.json").read_bytes()
    for name in ("scheduler/scheduler_config.json", "unet/config.json"):
        assert json.loads((tmp_path / "pipeline" / name).read_text()) == json.loads((run_dir / name).read_text())
    pipe = _load(tmp_path / "pipeline")
    _assert_bitwise(pipe.unet, merged)
    assert not torch.equal(merged["conv_in.weight"], _load(run_dir).unet.state_dict()["conv_in.weight"])
    image = pipe(batch_size=1, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                 output_type="np").images
    assert image.shape == (1, 16, 16, 3)
    assert _hidden(tmp_path) == []


def test_unet_folder_alone_gives_a_ddpm_pipeline_with_default_scheduler(run, tmp_path) -> None:
    run_dir, merged = run
    export = export_pipeline(merged, run_dir / "checkpoint-4" / "unet", tmp_path / "p")
    assert (export.pipeline_class, export.scheduler_class, export.scheduler_source) == ("DDPMPipeline",
                                                                                        "DDPMScheduler", None)
    pipe = _load(tmp_path / "p")
    _assert_bitwise(pipe.unet, merged)
    c = pipe.scheduler.config
    assert (type(pipe.scheduler).__name__, c.num_train_timesteps, c.beta_schedule, c.beta_start, c.beta_end,
            c.prediction_type) == ("DDPMScheduler", 1000, "linear", 0.0001, 0.02, "epsilon")


def test_unet_config_with_a_scheduler_config_beside_it_keeps_that_scheduler(run, tmp_path) -> None:
    run_dir, merged = run
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    shutil.copy(run_dir / "unet" / "config.json", cfg / "config.json")
    (cfg / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDIMScheduler", "num_train_timesteps": 500,
                                                           "beta_schedule": "squaredcos_cap_v2"}))
    export = export_pipeline(merged, cfg / "config.json", tmp_path / "p")
    assert (export.scheduler_class, export.scheduler_source) == ("DDIMScheduler", str(cfg / "scheduler_config.json"))
    pipe = _load(tmp_path / "p")
    _assert_bitwise(pipe.unet, merged)
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert (pipe.scheduler.config.num_train_timesteps, pipe.scheduler.config.beta_schedule) == (500,
                                                                                                "squaredcos_cap_v2")
    (cfg / "scheduler_config.json").write_text(json.dumps({"_class_name": "NoSuchScheduler"}))
    with pytest.raises(ConfigError, match="'NoSuchScheduler' is not a diffusers scheduler"):
        export_pipeline(merged, cfg, tmp_path / "q")
    assert not (tmp_path / "q").exists() and _hidden(tmp_path) == []


def test_an_earlier_export_is_replaced_and_a_failed_write_keeps_it(run, tmp_path, monkeypatch) -> None:
    run_dir, merged = run
    target = tmp_path / "pipeline"
    export_pipeline({k: v + 1 for k, v in merged.items()}, run_dir, target)
    export_pipeline(merged, run_dir, target)
    _assert_bitwise(_load(target).unet, merged)
    assert _hidden(tmp_path) == []

    def broken(folder):
        raise OSError(5, "input/output error")

    monkeypatch.setattr(export_mod, "_fsync_tree", broken)
    with pytest.raises(OSError, match="input/output error"):
        export_pipeline({k: 2 * v for k, v in merged.items()}, run_dir, target)
    _assert_bitwise(_load(target).unet, merged)
    assert _hidden(tmp_path) == []


def test_a_folder_that_is_not_a_pipeline_is_never_replaced(run, tmp_path) -> None:
    run_dir, merged = run
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match=r"mine: a folder that is not a diffusers pipeline \(no model_index.json\)"):
        export_pipeline(merged, run_dir, tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_missing_or_mismatched_config_is_one_error_and_writes_nothing(run, tmp_path) -> None:
    run_dir, merged = run
    with pytest.raises(ConfigError, match=r"nowhere: no such file or folder"):
        export_pipeline(merged, tmp_path / "nowhere", tmp_path / "p")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"_class_name": "UNet2DModel", **TINY_UNET, "block_out_channels": [16, 16]}))
    with pytest.raises(ConfigError, match=rf"{config} does not match the checkpoints: tensor 'conv_in.weight' has "
                                          r"shape \(16, 3, 3, 3\) in the config's UNet but \(8, 3, 3, 3\) in m.sft"):
        export_pipeline(merged, config, tmp_path / "p", source="m.sft")
    without = {k: v for k, v in merged.items() if k != "conv_out.bias"}
    with pytest.raises(ConfigError, match="has no tensor 'conv_out.bias'"):
        export_pipeline(without, run_dir, tmp_path / "p")
    assert not (tmp_path / "p").exists() and _hidden(tmp_path) == []


def test_merge_pipeline_path_is_beside_the_merged_file() -> None:
    assert merge_pipeline_path(Path("out/best.safetensors")) == Path("out/best-pipeline")
