"""CPU checks of the ``--device cuda`` paths: each test runs the fixed function with tensors on another device than
the CPU (``meta``, which like CUDA refuses mixing with CPU tensors) or spies on where a draw is made, and fails on
the code before its fix."""

from __future__ import annotations

import pytest
import torch

import lcsc.generate as generate_mod
from lcsc.analysis.hessian import make_hvp
from lcsc.consistency.sampling import ConsistencySampler
from lcsc.generate import draw_inputs, generate_many
from lcsc.models import ModelConfig, build_model
from lcsc.training.ema import MultiEMA
from lcsc.training.phema import PowerEMA


def test_cm_sampler_draws_its_renoising_on_the_generators_device(monkeypatch):
    """A caller's CUDA generator made a CPU draw (torch refuses that): the draw must be on the generator's device."""
    real, seen = torch.randn, []

    def spy(*args, generator=None, device=None, **kw):
        seen.append((generator, device))
        return real(*args, generator=generator, **kw)

    sampler = ConsistencySampler(0.002, 80.0)
    sampler.set_timesteps(2)
    gen = torch.Generator().manual_seed(0)
    monkeypatch.setattr(torch, "randn", spy)
    out = sampler.step(torch.zeros(3, 1, 2, 2), sampler.timesteps[0], torch.zeros(3, 1, 2, 2), gen).prev_sample
    assert seen == [(gen, gen.device)] and out.shape == (3, 1, 2, 2)


def test_generate_many_keeps_batch_size_rows_per_call_off_the_cpu(monkeypatch):
    """On a non-CPU device each vmapped call held batch_size·B rows (B² × the loop's batch for an objective)."""
    rows = []

    def fake_sample(model, noise, labels, step, nfe, solver):
        rows.append(noise.shape[0])
        return torch.zeros(noise.shape)

    model = build_model(ModelConfig(kind="cm", channels=8))
    states = [model.state_dict()] * 4
    inputs = draw_inputs(model.config, 40, 0)
    monkeypatch.setattr(generate_mod, "_sample", fake_sample)
    out = generate_many(model, states, inputs, nfe=1, batch_size=40, device="meta")
    assert rows == [40] * 4 and [len(x) for x in out] == [40] * 4


def test_hessian_vector_products_take_a_cpu_vector_for_parameters_elsewhere():
    """scipy hands a CPU vector; the HVP must move it to the parameters' device (it failed off the CPU)."""
    w = torch.nn.Parameter(torch.randn(3, device="meta"))
    b = torch.nn.Parameter(torch.randn(3, device="meta"))
    hvp = make_hvp((w**2).sum() + (w * b).sum(), [w, b])
    assert hvp(torch.ones(6)).device.type == "meta"


@pytest.mark.parametrize("kind", ["ema", "phema"])
def test_averages_follow_a_model_moved_after_they_were_made(kind):
    """A recorder (and its EMAs) built before ``model.to("cuda")`` failed at the first update (lerp across devices)."""
    model = torch.nn.Linear(2, 2)
    avg = MultiEMA(model, [5.0]) if kind == "ema" else PowerEMA(model, [0.1])
    model.to("meta")
    avg.update() if kind == "ema" else avg.update(1)
    assert all(t.device.type == "meta" for ts in avg.shadows.values() for t in ts)
