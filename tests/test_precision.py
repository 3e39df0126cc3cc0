"""bf16 autocast for sampling: only the network's calls, float32 out, the same noise; "off" changes nothing."""

from __future__ import annotations

import pytest
import torch

from lcsc.errors import ConfigError
from lcsc.generate import draw_inputs, generate, generate_many
from lcsc.models import ModelConfig, build_model
from lcsc.precision import AutocastModel, check_autocast, with_autocast


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, channels=8)).eval()
    with torch.no_grad():  # a non-zero output layer, so the network's precision shows in the samples
        model.net.conv_out.weight.normal_(0, 0.1)
    return model


def test_modes_are_checked_and_off_is_the_model_itself():
    assert check_autocast(None) == "off" and check_autocast(" BF16 ") == "bf16"
    with pytest.raises(ConfigError, match="--autocast 'fp8': choose one of off, bf16"):
        check_autocast("fp8")
    model = _model("dm")
    assert with_autocast(model, "off") is model and isinstance(with_autocast(model, "bf16"), AutocastModel)


def test_the_network_runs_under_autocast_and_the_solver_gets_float32():
    model = _model("cm")
    inner_dtypes = []
    model.net.conv_out.register_forward_hook(lambda mod, inp, out: inner_dtypes.append(out.dtype))
    wrapped = with_autocast(model, "bf16")
    out = wrapped(torch.randn(4, 1, 8, 8), torch.full((4,), 2.0))
    assert inner_dtypes == [torch.bfloat16] and out.dtype == torch.float32
    assert wrapped.config is model.config and next(wrapped.parameters()) is next(model.parameters())


@pytest.mark.parametrize("kind,nfe", [("dm", 4), ("cm", 2)])
def test_bf16_samples_are_close_to_float32_on_the_same_noise(kind, nfe):
    model = _model(kind)
    fp32 = generate(model, 32, 5, nfe=nfe)
    bf16 = generate(model, 32, 5, nfe=nfe, autocast="bf16")
    assert bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)
    assert (fp32 - bf16).abs().mean() < 0.01  # (an untrained DM saturates: a few pixels flip sign, so not the max)
    inputs = draw_inputs(model.config, 32, 5, nfe=nfe)
    many = generate_many(model, [model.state_dict()] * 2, inputs, nfe=nfe, batch_size=64, autocast="bf16")
    assert all((m - bf16).abs().mean() < 0.01 for m in many)
