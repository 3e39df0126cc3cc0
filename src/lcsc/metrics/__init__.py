"""Metrics: feature spaces (Inception, two digits nets, any callable), fast Fréchet distance, KID, precision/recall,
the IS analogue, cached reference sets, :func:`evaluate_images`, and differentiable FD/KID for gradient searches."""

from lcsc.metrics.differentiable import (
    combine_terms,
    differentiable_features,
    frechet_distance_torch,
    kid_torch,
    smooth_max,
)
from lcsc.metrics.evaluate import METRICS, EvalResult, evaluate_images, parse_metrics
from lcsc.metrics.features import CallableFeatures, ClassifierFeatures, FeatureExtractor
from lcsc.metrics.frechet import FrechetReference, GaussianStats, frechet_distance, frechet_distance_sqrtm
from lcsc.metrics.inception_score import inception_score, inception_score_from_logits
from lcsc.metrics.kid import kernel_inception_distance
from lcsc.metrics.precision_recall import precision_recall
from lcsc.metrics.reference import ReferenceSet, reference_set
from lcsc.metrics.spaces import FEATURE_SPACES, feature_space

__all__ = [
    "FEATURE_SPACES",
    "METRICS",
    "CallableFeatures",
    "ClassifierFeatures",
    "EvalResult",
    "FeatureExtractor",
    "FrechetReference",
    "GaussianStats",
    "ReferenceSet",
    "combine_terms",
    "differentiable_features",
    "evaluate_images",
    "feature_space",
    "frechet_distance",
    "frechet_distance_sqrtm",
    "frechet_distance_torch",
    "inception_score",
    "inception_score_from_logits",
    "kernel_inception_distance",
    "kid_torch",
    "parse_metrics",
    "precision_recall",
    "reference_set",
    "smooth_max",
]
