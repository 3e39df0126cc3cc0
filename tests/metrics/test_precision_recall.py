"""Improved precision/recall: 1/1 on identical sets, recall drops under mode dropping while precision holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcsc.errors import ConfigError
from lcsc.metrics.precision_recall import knn_radii_sq, precision_recall


def clusters(rng: np.random.Generator, per_cluster: int, which: tuple[int, ...], d: int = 4) -> np.ndarray:
    centres = 20.0 * np.eye(4, d)  # 4 well-separated modes
    return np.concatenate([centres[c] + rng.standard_normal((per_cluster, d)) for c in which])


def test_identical_sets_give_one_and_one():
    x = np.random.default_rng(0).standard_normal((300, 8))
    assert precision_recall(x, x.copy(), k=3, batch_size=64) == (1.0, 1.0)
    assert precision_recall(torch.from_numpy(x).float(), x, k=3) == (1.0, 1.0)


def test_mode_dropping_lowers_recall_not_precision():
    rng = np.random.default_rng(1)
    real = clusters(rng, 200, (0, 1, 2, 3))
    full_p, full_r = precision_recall(real, clusters(rng, 200, (0, 1, 2, 3)), k=3)
    assert full_p > 0.85 and full_r > 0.85  # finite-sample k-NN manifolds: a fresh draw is not quite 1
    precision, recall = precision_recall(real, clusters(rng, 400, (0,)), k=3, batch_size=100)
    assert precision > full_p - 0.05
    assert recall < 0.3
    precision2, recall2 = precision_recall(real, clusters(rng, 200, (1, 3)), k=3, batch_size=128)
    assert precision2 > full_p - 0.05
    assert 0.3 < recall2 < 0.6


def test_batching_does_not_change_the_result():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((150, 5)), rng.standard_normal((90, 5)) * 1.3 + 0.2
    expected = precision_recall(real, fake, k=3, batch_size=10_000)
    assert precision_recall(real, fake, k=3, batch_size=7) == expected


def test_knn_radius_matches_brute_force():
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((40, 3)))
    d2 = torch.cdist(x, x) ** 2
    expected = d2.sort(dim=1).values[:, 3]  # column 0 is the point itself
    torch.testing.assert_close(knn_radii_sq(x, 3, batch_size=16), expected, rtol=1e-9, atol=1e-9)


def test_too_few_samples_and_mismatch():
    x = np.zeros((3, 4))
    with pytest.raises(ConfigError, match="3 sample"):
        precision_recall(x, np.ones((10, 4)), k=3)
    with pytest.raises(ConfigError, match="4 vs 5"):
        precision_recall(np.ones((10, 4)), np.ones((10, 5)), k=3)
