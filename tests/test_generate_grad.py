"""Differentiable sampling: with autograd off it gives exactly the no-grad samples; checkpointing keeps what the
backward pass stores flat in NFE (one image batch per step), where storing activations grows with every step."""

from __future__ import annotations

import pytest
import torch

from lcsc.generate import draw_inputs, generate
from lcsc.generate_grad import generate_differentiable
from lcsc.models import ModelConfig, build_model


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(kind=kind, channels=8))


@pytest.mark.parametrize(("kind", "solver", "nfe"), [("dm", "ddim", 4), ("dm", "dpm-solver", 5), ("cm", "dpm-solver", 1),
                                                     ("cm", "dpm-solver", 3)])
def test_the_differentiable_path_equals_generate_bit_for_bit(kind, solver, nfe, one_thread):
    model = _model(kind)
    inputs = draw_inputs(model.config, 12, torch.Generator().manual_seed(3), nfe=nfe, batch_size=12)
    expected = generate(model, 12, None, nfe=nfe, solver=solver, inputs=inputs, batch_size=12)
    state = {k: v.detach().clone().requires_grad_(v.is_floating_point()) for k, v in model.state_dict().items()}
    got = generate_differentiable(model, state, inputs, nfe=nfe, solver=solver)
    assert torch.equal(got.detach(), expected)
    got.sum().backward()
    assert any(v.grad is not None and v.grad.abs().sum() > 0 for v in state.values())


def _saved_bytes(model, nfe: int, checkpoint: bool) -> int:
    """Bytes autograd keeps for the backward pass of one sampling run (what grows the memory)."""
    inputs = draw_inputs(model.config, 8, torch.Generator().manual_seed(0), nfe=nfe, batch_size=8)
    state = {k: v.detach().clone().requires_grad_(v.is_floating_point()) for k, v in model.state_dict().items()}
    params = {t.data_ptr() for t in state.values()}
    total = 0

    def pack(t: torch.Tensor):
        nonlocal total
        if t.data_ptr() not in params:  # the weights themselves are held anyway
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x = generate_differentiable(model, state, inputs, nfe=nfe, solver="dpm-solver", checkpoint=checkpoint)
    x.sum().backward()
    return total


def test_checkpointing_keeps_memory_flat_in_nfe(one_thread):
    model = _model("dm")
    image = 8 * 1 * 8 * 8 * 4  # one batch of images in float32
    plain = {n: _saved_bytes(model, n, False) for n in (5, 20)}
    ckpt = {n: _saved_bytes(model, n, True) for n in (5, 20)}
    per_step_plain = (plain[20] - plain[5]) / 15
    per_step_ckpt = (ckpt[20] - ckpt[5]) / 15
    assert per_step_ckpt <= 40 * image  # the solver's own state: a few image-sized tensors per step
    assert per_step_plain > 5 * per_step_ckpt  # every step's activations, without checkpointing
    assert ckpt[20] < plain[5]
