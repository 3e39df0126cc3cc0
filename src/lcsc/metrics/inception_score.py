# Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) ‖ p(y)).
"""Inception Score from a classifier's class probabilities (or logits), mean and standard deviation over
``splits`` consecutive chunks of the samples (``np.array_split``), each chunk using its own marginal p(y)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lcsc.errors import ConfigError
from lcsc.metrics.frechet import as_feature_matrix

__all__ = ["inception_score", "inception_score_from_logits"]

_SUM_TOL = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; anything beyond this is not a distribution


def _split_scores(probs: np.ndarray, splits: int) -> np.ndarray:
    import scipy.special  # here, not at import: scipy costs a good part of a second at every lcsc start-up

    scores = np.empty(splits, dtype=np.float64)
    for i, part in enumerate(np.array_split(probs, splits)):
        marginal = part.mean(axis=0, keepdims=True)
        # p log(p / p̄) with 0 log 0 = 0 (p̄ = 0 forces p = 0 in this chunk)
        kl = scipy.special.xlogy(part, part) - scipy.special.xlogy(part, np.broadcast_to(marginal, part.shape))
        scores[i] = np.exp(kl.sum(axis=1).mean())
    return scores


def inception_score(probs: Any, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over ``splits`` chunks of exp(mean KL(p(y|x) ‖ p(y))) for probabilities ``probs`` (N×C).

    Rows must be non-negative and sum to 1 within 1e-3; N ≥ ``splits`` ≥ 1.
    """
    p = as_feature_matrix(probs, "Inception Score probabilities", min_rows=1)
    if splits < 1:
        raise ConfigError(f"Inception Score splits must be >= 1; got {splits}")
    if p.shape[0] < splits:
        raise ConfigError(f"Inception Score needs at least one sample per split: {p.shape[0]} sample(s) "
                          f"for {splits} splits")
    if (p < 0).any():
        raise ConfigError(f"Inception Score probabilities have negative entries (min {p.min():.3g})")
    sums = p.sum(axis=1)
    worst = int(np.abs(sums - 1.0).argmax())
    if abs(sums[worst] - 1.0) > _SUM_TOL:
        raise ConfigError(f"Inception Score probabilities must sum to 1 per row; row {worst} sums to "
                          f"{sums[worst]:.6g} (pass logits to inception_score_from_logits instead)")
    scores = _split_scores(p, splits)
    return float(scores.mean()), float(scores.std())


def inception_score_from_logits(logits: Any, splits: int = 10) -> tuple[float, float]:
    """:func:`inception_score` of ``softmax(logits)`` (N×C, computed in float64)."""
    import scipy.special

    z = as_feature_matrix(logits, "Inception Score logits", min_rows=1)
    return inception_score(scipy.special.softmax(z, axis=1), splits)
