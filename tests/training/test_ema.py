"""``MultiEMA`` and ``lerp_towards``: the update equals the closed form θ̄_t = γ^t θ̄_0 + Σ_s (1−γ) γ^(t−s) θ_s."""

from __future__ import annotations

import pytest
import torch

from lcsc.training import MultiEMA
from lcsc.training.ema import lerp_towards


def test_update_matches_closed_form_for_a_few_steps():
    model = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        model.weight.fill_(5.0)
        model.bias.fill_(-1.0)
    ema = MultiEMA(model, half_lives=[2.0], rates=[0.5, 0.9])
    thetas = [1.0, 3.0, -2.0]
    for theta in thetas:
        with torch.no_grad():
            model.weight.fill_(theta)
            model.bias.fill_(2 * theta)
        ema.update()
    for name, g in ema.rates.items():
        t = len(thetas)
        want = g**t * 5.0 + sum((1 - g) * g ** (t - s) * th for s, th in enumerate(thetas, start=1))
        want_bias = g**t * -1.0 + sum((1 - g) * g ** (t - s) * 2 * th for s, th in enumerate(thetas, start=1))
        sd = ema.state_dict_for(name)
        assert sd["weight"].flatten().tolist() == pytest.approx([want, want], rel=1e-12, abs=1e-12)
        assert float(sd["bias"]) == pytest.approx(want_bias, rel=1e-12, abs=1e-12)


def test_lerp_towards_is_bit_identical_to_torch_lerp():
    gen = torch.Generator().manual_seed(0)
    avgs = [torch.randn(3, 4, generator=gen), torch.randn(7, generator=gen)]
    live = [torch.randn(3, 4, generator=gen), torch.randn(7, generator=gen)]
    for decay in (0.9, 0.999, 0.0):
        want = [torch.lerp(a, x, 1.0 - decay) for a, x in zip(avgs, live)]
        lerp_towards(avgs, live, decay)
        assert all(torch.equal(a, w) for a, w in zip(avgs, want))
    lerp_towards([], [], 0.9)  # nothing to move: a no-op
