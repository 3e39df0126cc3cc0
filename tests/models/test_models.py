"""Models: one interface, sizes, class conditioning, rebuilt from metadata, bad configs."""

from __future__ import annotations

import pytest
import torch

from lcsc.checkpoints import save_checkpoint
from lcsc.errors import CheckpointError, ConfigError
from lcsc.models import ModelConfig, build_model, count_parameters, load_model, read_model_config


@pytest.mark.parametrize("kind", ["dm", "cm"])
def test_rebuilt_from_metadata_reproduces_outputs(tmp_path, kind):
    config = ModelConfig(kind=kind, num_classes=10, channels=16)
    torch.manual_seed(1)
    model = build_model(config).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), step=7, config=config.to_dict())
    assert read_model_config(path) == config
    rebuilt = load_model(path)
    x, level, labels = torch.randn(4, 1, 8, 8), torch.tensor([1.0, 10.0, 100.0, 500.0]), torch.arange(4)
    assert torch.equal(rebuilt(x, level, labels), model(x, level, labels))


def test_small_backbone_size_and_class_conditioning():
    model = build_model(ModelConfig(num_classes=10)).eval()
    with torch.no_grad():  # the output layer starts at zero; give it weights so the labels show
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert 100_000 <= count_parameters(model) <= 250_000
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([500.0, 500.0])
    a = model(x, t, torch.tensor([0, 0]))
    b = model(x, t, torch.tensor([3, 3]))
    assert a.shape == x.shape and not torch.equal(a, b)


def test_consistency_boundary_condition():
    model = build_model(ModelConfig(kind="cm", channels=8)).eval()
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(model(x, model.config.sigma_min), x)
    assert not torch.allclose(model(x, 1.0), x)


def test_diffusers_unet_preset_forward():
    model = build_model(ModelConfig(backbone="unet32", in_channels=3, resolution=32)).eval()
    assert 30e6 < count_parameters(model) < 40e6
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), torch.tensor([10.0]))
    assert out.shape == (1, 3, 32, 32)


def test_bad_configs_and_checkpoints(tmp_path):
    with pytest.raises(ConfigError, match="backbone 'huge'"):
        ModelConfig(backbone="huge")
    with pytest.raises(ConfigError, match="unet64 is for 64×64"):
        build_model(ModelConfig(backbone="unet64", resolution=8))
    plain = save_checkpoint(tmp_path / "plain.safetensors", {"w": torch.zeros(2)}, step=1)
    with pytest.raises(CheckpointError, match="plain.safetensors: metadata has no model config"):
        load_model(plain)
    with pytest.raises(ConfigError, match="unknown model config keys"):
        ModelConfig.from_dict({"lcsc_model": 1, "widht": 3})
