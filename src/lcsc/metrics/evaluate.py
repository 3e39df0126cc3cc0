"""Score generated images against a reference set: FD, KID, precision/recall and the IS analogue in one call."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lcsc.errors import ConfigError
from lcsc.metrics.features import FeatureExtractor
from lcsc.metrics.inception_score import inception_score_from_logits
from lcsc.metrics.kid import kernel_inception_distance
from lcsc.metrics.precision_recall import precision_recall
from lcsc.metrics.reference import ReferenceSet

__all__ = ["METRICS", "KID_SCALE", "EvalResult", "evaluate_images", "kid_label", "parse_metrics"]

METRICS = ("fd", "kid", "pr", "is")


KID_SCALE = 1e3  # reports show KID ×10³, as the KID paper's tables (Bińkowski et al. 2018) do


def kid_label(features: str) -> str:
    """How KID is labelled for people: ``"KID×10³ (inception)"`` — the scale and the feature space it is in."""
    return f"KID×10³ ({features})"


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one image set in one feature space (None: not asked for).

    ``kid`` / ``kid_std`` hold the library value, the raw unbiased MMD² of :func:`kernel_inception_distance` in the
    ``features`` space; ``kid_x1e3`` / ``kid_std_x1e3`` are them ×10³, the scale reports use. :meth:`to_dict` (what
    JSON outputs hold) writes only the ×10³ keys plus ``kid_features``, so a file's KID always says its units.
    """

    features: str
    num_samples: int
    fd: float | None = None
    kid: float | None = None
    kid_std: float | None = None
    precision: float | None = None
    recall: float | None = None
    inception_score: float | None = None
    inception_score_std: float | None = None

    @property
    def kid_x1e3(self) -> float | None:
        """KID ×10³ (None when KID was not asked for)."""
        return None if self.kid is None else KID_SCALE * self.kid

    @property
    def kid_std_x1e3(self) -> float | None:
        """The std of KID over subsets, ×10³."""
        return None if self.kid_std is None else KID_SCALE * self.kid_std

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: KID as ``kid_x1e3`` / ``kid_std_x1e3`` with ``kid_features`` (its feature space)."""
        out: dict[str, Any] = {}
        for key, value in dataclasses.asdict(self).items():
            if key == "kid":
                out.update(kid_x1e3=self.kid_x1e3, kid_std_x1e3=self.kid_std_x1e3,
                           kid_features=None if self.kid is None else self.features)
            elif key != "kid_std":
                out[key] = value
        return out


def parse_metrics(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """'fd,kid,pr,is' → ('fd', 'kid', 'pr', 'is'); unknown names are a :class:`ConfigError`."""
    names = [m.strip().lower() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise ConfigError(f"metrics {spec!r}: choose from {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


def evaluate_images(images: torch.Tensor, reference: ReferenceSet, features: FeatureExtractor,
                    metrics: tuple[str, ...] = ("fd",), *, kid_subsets: int = 100, kid_subset_size: int = 1000,
                    seed: int = 0, progress: bool = False) -> EvalResult:
    """Features of ``images`` (N×C×H×W in [-1, 1]) compared with ``reference`` under ``features``."""
    metrics = parse_metrics(metrics)
    if "is" in metrics and not features.has_logits:
        raise ConfigError(f"the IS analogue needs a classifier head; {features.name!r} has none "
                          "(use --features digits or digits2)")
    feats = features(images, progress=progress).numpy().astype(np.float64)
    out: dict[str, Any] = {"features": features.name, "num_samples": len(images)}
    if "fd" in metrics:
        out["fd"] = reference.frechet.distance_features(feats)
    if "kid" in metrics:
        out["kid"], out["kid_std"] = kernel_inception_distance(reference.features, feats, kid_subsets,
                                                               kid_subset_size, seed)
    if "pr" in metrics:
        out["precision"], out["recall"] = precision_recall(reference.features, feats, k=3)
    if "is" in metrics:
        out["inception_score"], out["inception_score_std"] = inception_score_from_logits(
            features.logits(images).numpy(), splits=10)
    return EvalResult(**{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in out.items()})
