from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.errors import ConfigError
from lcsc.merge import merge
from lcsc.search import SearchSpace, default_half_lives, ema_coefficients, half_life_to_rate
from tests.search.trajectory import train


def test_ema_coefficients_sum_to_one_and_favour_recent() -> None:
    a = ema_coefficients(50, 0.99, 10)
    assert abs(a.sum() - 1) < 1e-12 and np.all(np.diff(a[1:]) > 0)
    assert np.allclose(ema_coefficients(5, 0.0, 3), [0, 0, 0, 0, 1])


def test_ema_derivation_exact_for_piecewise_constant_weights() -> None:
    """An EMA updated every iteration over weights that change only at checkpoint steps equals Σ a_k θ_k."""
    rng = np.random.default_rng(0)
    K, interval, rate = 12, 7, 0.97
    thetas = rng.normal(size=(K, 5))
    ema = thetas[0].copy()  # EMA started at the first checkpoint
    for k in range(1, K):
        for _ in range(interval):  # the I iterations ending at checkpoint k all see θ_k
            ema = rate * ema + (1 - rate) * thetas[k]
    assert np.allclose(ema, ema_coefficients(K, rate, interval) @ thetas, atol=1e-12)


def test_ema_derivation_close_to_actual_sgd_ema(tmp_path: Path) -> None:
    rate = half_life_to_rate(60)
    emas = train(tmp_path, iterations=400, window=300, interval=10, ema_rates=(rate,))
    stack = CheckpointStack.open(tmp_path, progress=False)
    derived = merge(stack, ema_coefficients(stack.K, rate, 10))
    actual, last = emas[rate], stack.checkpoint(stack.K - 1)
    for name in actual:
        err = float((derived[name] - actual[name]).norm())
        spread = float((last[name] - actual[name]).norm())
        assert err < 0.2 * spread, f"{name}: derived EMA off by {err:.4f} vs last-checkpoint gap {spread:.4f}"


def test_normalize_redraw_and_convex() -> None:
    space = SearchSpace(K=3)
    assert np.allclose(space.normalize(np.array([1.0, 1.0, 2.0])), [[0.25, 0.25, 0.5]])
    assert space.normalize(np.array([1.0, -1.0, 0.05])) is None  # |Σa| < 0.1 → redraw
    convex = SearchSpace(K=3, convex=True)
    out = convex.normalize(np.array([2.0, -1.0, 1.0]))
    assert np.all(out >= 0) and np.allclose(out, [[2 / 3, 0, 1 / 3]])
    with pytest.raises(ConfigError, match="expected 1×3"):
        space.validate(np.ones(4))


def test_default_half_lives_span_the_window() -> None:
    hl = default_half_lives(K=100, interval=10, count=6)
    assert hl[0] == 10 and hl[-1] == 500 and len(hl) == 6 and hl == sorted(hl)
    assert all(abs(half_life_to_rate(h) ** h - 0.5) < 1e-12 for h in hl)


def test_ema_groups_tile() -> None:
    ind = SearchSpace(K=4, G=2).ema_individuals(5, [10.0])
    (a,) = ind.values()
    assert (
        a.shape == (2, 4) and np.allclose(a.sum(1), 1) and torch.equal(torch.tensor(a[0]), torch.tensor(a[1]))
    )
