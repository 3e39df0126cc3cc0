"""Feature spaces by name: "inception" (standard FID), "digits" (FD_digits), "digits2" and "digits3" (independent checks),
"digits4" (a ViT; report-only, :mod:`lcsc.protocol`)."""

from __future__ import annotations

import torch

from lcsc.errors import ConfigError
from lcsc.metrics.features import FeatureExtractor
from lcsc.protocol import check_space

__all__ = ["FEATURE_SPACES", "feature_space"]

FEATURE_SPACES = ("inception", "digits", "digits2", "digits3", "digits4")


def feature_space(name: str, device: str | torch.device = "cpu", batch_size: int | None = None) -> FeatureExtractor:
    """Build the named feature extractor (digits nets are trained and cached on first use). Inside decision code
    (:func:`lcsc.protocol.deciding`) a report-only space is refused."""
    check_space(name)
    if name == "inception":
        from lcsc.metrics.inception import InceptionFeatures

        return InceptionFeatures(device, batch_size or 32)
    if name in ("digits", "digits2", "digits3", "digits4"):
        from lcsc.metrics.digits_features import digits_features

        return digits_features(name, device, batch_size=batch_size or 1000)
    raise ConfigError(f"unknown feature space {name!r}; choose one of {', '.join(FEATURE_SPACES)}")
