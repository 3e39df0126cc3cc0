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


def test_eval_result_reports_kid_x1e3_and_its_feature_space():
    from lcsc.data import ImageData
    from lcsc.metrics import CallableFeatures, evaluate_images, reference_set

    gen = torch.Generator().manual_seed(0)
    real = ImageData(torch.rand(300, 1, 4, 4, generator=gen) * 2 - 1, torch.zeros(300, dtype=torch.long), 1, "rand")
    fake = (torch.rand(200, 1, 4, 4, generator=gen) * 1.6 - 0.6).clamp(-1, 1)
    space = CallableFeatures(lambda x: x.flatten(1), "pixels", id="pixels-v1")
    ref = reference_set(real, space, cache=False)
    r = evaluate_images(fake, ref, space, ("kid",), kid_subsets=7, kid_subset_size=150, seed=3)
    raw, raw_std = kernel_inception_distance(ref.features, space(fake).numpy(), 7, 150, seed=3)
    assert r.kid == pytest.approx(raw, rel=1e-12) and r.kid_std == pytest.approx(raw_std, rel=1e-12)  # library: raw
    d = r.to_dict()
    assert d["kid_x1e3"] == pytest.approx(1000 * raw, rel=1e-12) and d["kid_std_x1e3"] == pytest.approx(1000 * raw_std)
    assert d["kid_features"] == "pixels" and "kid" not in d and "kid_std" not in d and raw > 0
    none = evaluate_images(fake, ref, space, ("fd",)).to_dict()
    assert none["kid_x1e3"] is None and none["kid_features"] is None
