"""KID: near zero for two draws of the same set, clearly positive for a shifted set, deterministic per seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcsc.errors import ConfigError
from lcsc.metrics.kid import kernel_inception_distance, polynomial_mmd2_unbiased


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((4000, 32)) @ rng.standard_normal((32, 32)) / np.sqrt(32)


def test_kid_identical_sets_near_zero_and_shift_positive(feats):
    same, same_std = kernel_inception_distance(feats, feats, num_subsets=20, subset_size=300)
    shifted, _ = kernel_inception_distance(feats, feats + 0.5, num_subsets=20, subset_size=300)
    assert shifted > 0.05
    assert abs(same) < 0.01 * shifted
    assert same_std >= 0.0
    # the same finite set on both sides has the O(1/N) bias −2(mean k(x,x) − mean k(x,x'))/N: tiny, negative
    k = (feats @ feats.T / feats.shape[1] + 1.0) ** 3
    n = len(feats)
    bias = -2.0 * (np.trace(k) / n - (k.sum() - np.trace(k)) / (n * (n - 1))) / n
    assert same == pytest.approx(bias, abs=3 * same_std / np.sqrt(20))


def test_kid_two_samples_of_one_distribution_near_zero():
    rng = np.random.default_rng(3)
    mix = rng.standard_normal((16, 16)) / 4
    a, b = rng.standard_normal((3000, 16)) @ mix, rng.standard_normal((3000, 16)) @ mix
    mean, std = kernel_inception_distance(a, b, num_subsets=20, subset_size=500)
    assert abs(mean) < 3 * std / np.sqrt(20) + 1e-4
    assert kernel_inception_distance(a, b + 0.3, num_subsets=20, subset_size=500)[0] > 20 * abs(mean)


def test_kid_deterministic_for_a_seed(feats):
    other = torch.from_numpy(feats[::-1].copy() + 0.1)  # torch input accepted
    r1 = kernel_inception_distance(feats, other, num_subsets=5, subset_size=200, seed=7)
    r2 = kernel_inception_distance(feats, other, num_subsets=5, subset_size=200, seed=7)
    r3 = kernel_inception_distance(feats, other, num_subsets=5, subset_size=200, seed=8)
    assert r1 == r2
    assert r1 != r3


def test_unbiased_mmd_matches_a_loop():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3)) + 0.3

    def k(a, b):
        return (a @ b / 3 + 1.0) ** 3

    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_subset_size_is_capped_and_errors():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((10, 4)), rng.standard_normal((7, 4))
    mean, std = kernel_inception_distance(a, b, num_subsets=3, subset_size=1000)
    assert np.isfinite(mean) and np.isfinite(std)
    with pytest.raises(ConfigError, match="1 sample"):
        kernel_inception_distance(a[:1], b)
    with pytest.raises(ConfigError, match="4 vs 5"):
        kernel_inception_distance(a, rng.standard_normal((7, 5)))
