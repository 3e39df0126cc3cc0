"""Inception Score: C for confident and diverse predictions, 1 for identical ones, errors on non-probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcsc.errors import ConfigError
from lcsc.metrics.inception_score import inception_score, inception_score_from_logits


def test_confident_and_diverse_gives_num_classes():
    c = 10
    probs = np.eye(c)[np.arange(1000) % c]  # one-hot, every class equally often in every split
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(c, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_identical_predictions_give_one():
    probs = np.tile(np.array([0.7, 0.2, 0.1]), (200, 1))
    mean, _ = inception_score(probs, splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12)


def test_from_logits_matches_softmax():
    logits = torch.randn(500, 7, generator=torch.Generator().manual_seed(0)) * 3
    probs = torch.softmax(logits.double(), dim=1).numpy()
    got = inception_score_from_logits(logits, splits=10)
    assert got == pytest.approx(inception_score(probs, splits=10), rel=1e-9)
    # confident logits approach the one-hot limit
    sharp = 50.0 * np.eye(4)[np.arange(400) % 4]
    assert inception_score_from_logits(sharp, splits=4)[0] == pytest.approx(4.0, rel=1e-6)


def test_bad_probabilities_are_errors():
    with pytest.raises(ConfigError, match="row 1 sums to 0.5"):
        inception_score(np.array([[0.5, 0.5], [0.25, 0.25], [1.0, 0.0]]), splits=1)
    with pytest.raises(ConfigError, match="negative"):
        inception_score(np.array([[1.5, -0.5], [0.5, 0.5]]), splits=1)
    with pytest.raises(ConfigError, match="NaN/Inf"):
        inception_score(np.array([[np.nan, 1.0], [0.5, 0.5]]), splits=1)
    with pytest.raises(ConfigError, match="3 sample"):
        inception_score(np.full((3, 2), 0.5), splits=10)
