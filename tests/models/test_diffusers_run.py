"""A diffusers UNet2DModel run as lcsc's ε-model: config and schedule reading, exact outputs, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.diffusion.sampling import make_scheduler, sample_dm
from lcsc.diffusion.schedule import NoiseSchedule
from lcsc.errors import ConfigError
from lcsc.models.diffusers_run import build_diffusers_model, read_diffusers_config
from lcsc.objectives.diffusers import diffusers_model
from tests.diffusers_run import TINY_UNET, train_run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("diffusers") / "run"
    train_run(out, (2, 5), pipeline=True)
    return out


def _model_at(run: Path, config, step: int):
    stack = CheckpointStack.open(run, cache=False, progress=False)
    model = build_diffusers_model(config)
    model.load_state_dict(stack.checkpoint(stack.steps.index(step)))
    return model


def _write_scheduler(folder: Path, **cfg) -> Path:
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "unet").mkdir(exist_ok=True)
    (folder / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **TINY_UNET}))
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler", **cfg}))
    return folder


def test_wrapped_model_equals_the_unet_it_was_saved_from(run) -> None:
    from diffusers import UNet2DModel

    config = read_diffusers_config(run)  # the pipeline folder: unet/config.json + scheduler/scheduler_config.json
    assert config.scheduler_source.endswith("scheduler_config.json") and (config.in_channels, config.resolution) == (3, 16)
    model = _model_at(run, config, 5)
    unet = UNet2DModel.from_pretrained(str(run / "checkpoint-5" / "unet")).eval()
    x, t = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 499, 999])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t.float()), unet(x, t).sample, rtol=0, atol=1e-6)
        torch.testing.assert_close(model(x, 250.0), unet(x, 250).sample, rtol=0, atol=1e-6)
    assert set(model.state_dict()) == set(unet.state_dict())  # keys without a wrapper prefix


def test_config_file_unet_folder_and_pipeline_agree(run) -> None:
    forms = [run, run / "unet", run / "unet" / "config.json", run / "checkpoint-2" / "unet"]
    configs = [read_diffusers_config(p) for p in forms]
    assert all(c.unet == configs[0].unet for c in configs)
    assert configs[2].scheduler_source is not None and configs[3].scheduler_source is None  # no pipeline around it
    default = configs[3].schedule.alphas_cumprod()
    from diffusers import DDPMScheduler

    torch.testing.assert_close(default, DDPMScheduler().alphas_cumprod.double(), rtol=0, atol=0)


def test_schedule_is_read_from_the_scheduler_config(tmp_path) -> None:
    from diffusers import DDIMScheduler, DDPMScheduler

    cfg = dict(num_train_timesteps=500, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    config = read_diffusers_config(_write_scheduler(tmp_path / "p", **cfg))
    model = build_diffusers_model(config)
    assert model.schedule == NoiseSchedule(500, "scaled_linear", 0.00085, 0.012)
    torch.testing.assert_close(model.schedule.alphas_cumprod(), DDPMScheduler(**cfg).alphas_cumprod.double())
    ddim = make_scheduler(model.schedule, "ddim", 4)
    torch.testing.assert_close(ddim.alphas_cumprod, DDIMScheduler(**cfg).alphas_cumprod)
    assert ddim.timesteps.tolist() == [499, 374, 249, 124]


def test_ddim_sampling_equals_a_diffusers_ddim_loop(run) -> None:
    from diffusers import DDIMScheduler, UNet2DModel

    model = _model_at(run, read_diffusers_config(run), 5)
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    ours = sample_dm(model, noise, nfe=4, solver="ddim")
    unet = UNet2DModel.from_pretrained(str(run / "checkpoint-5" / "unet")).eval()
    sched = DDIMScheduler(timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(4)
    x = noise.clone()
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x).prev_sample
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-5)


def test_v_prediction_becomes_epsilon(run, tmp_path) -> None:
    folder = _write_scheduler(tmp_path / "v", prediction_type="v_prediction")
    (folder / "unet" / "config.json").write_text((run / "unet" / "config.json").read_text())
    v_model = _model_at(run, read_diffusers_config(folder), 2)
    eps_model = _model_at(run, read_diffusers_config(run), 2)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10.0, 900.0])
    ac = NoiseSchedule().alphas_cumprod().float()[t.long()].view(-1, 1, 1, 1)
    with torch.no_grad():
        v = eps_model(x, t)  # the raw network output
        torch.testing.assert_close(v_model(x, t), ac.sqrt() * v + (1 - ac).sqrt() * x)


@pytest.mark.parametrize("unet, sched, message", [
    ({"_class_name": "UNet2DConditionModel"}, {}, "UNet2DConditionModel; lcsc's built-in objectives take"),
    ({"time_embedding_type": "fourier"}, {}, "fourier"),
    ({"sample_size": [16, 32]}, {}, "not square"),
    ({}, {"prediction_type": "sample"}, "prediction_type 'sample' is not supported"),
    ({}, {"beta_schedule": "sigmoid"}, "beta_schedule 'sigmoid' must be one of"),
    ({}, {"_class_name": "ScoreSdeVeScheduler"}, "not a DDPM"),
])
def test_unsupported_configs_are_refused_naming_the_file(tmp_path, unet, sched, message) -> None:
    folder = _write_scheduler(tmp_path / "p", **sched)
    (folder / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **TINY_UNET, **unet}))
    with pytest.raises(ConfigError, match=message) as info:
        read_diffusers_config(folder)
    assert str(folder) in str(info.value)


def test_missing_config_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="holds neither unet/config.json nor config.json"):
        read_diffusers_config(tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        read_diffusers_config(tmp_path / "nothing.json")


def test_config_that_does_not_fit_the_checkpoints_names_file_and_key(run, tmp_path) -> None:
    wider = tmp_path / "config.json"
    wider.write_text(json.dumps({"_class_name": "UNet2DModel", **TINY_UNET, "block_out_channels": [8, 32]}))
    with pytest.raises(ConfigError, match=rf"{wider} does not match the checkpoints: tensor '\S+' has shape"):
        diffusers_model(wider, run)
    deeper = tmp_path / "deeper.json"
    deeper.write_text(json.dumps({"_class_name": "UNet2DModel", **TINY_UNET, "layers_per_block": 2}))
    with pytest.raises(ConfigError, match=r"has no tensor 'down_blocks\.0\.resnets\.1\..*missing key"):
        diffusers_model(deeper, run)
    smaller = tmp_path / "smaller.json"
    smaller.write_text(json.dumps({"_class_name": "UNet2DModel", **TINY_UNET, "add_attention": False}))
    with pytest.raises(ConfigError, match=r"holds tensor 'mid_block\.attentions\.0\.\S+' that the config's UNet lacks"):
        diffusers_model(smaller, run)
