"""Reference sets: the real data's features and Gaussian statistics, computed once and cached.

The cache key is the hash of the images (and labels) together with the feature extractor's ``id``, so changing
either recomputes; the file is ``<cache>/reference/<data>-<features>.npz`` (no pickles)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcsc.atomic import atomic_path
from lcsc.data import ImageData
from lcsc.metrics.features import FeatureExtractor, metrics_cache_dir
from lcsc.metrics.frechet import FrechetReference, GaussianStats
from lcsc.progress import stage, stage_line

__all__ = ["ReferenceSet", "reference_set", "data_hash"]


def data_hash(data: ImageData) -> str:
    """SHA-256 of the images' shape and bytes."""
    h = hashlib.sha256(str(tuple(data.images.shape)).encode())
    h.update(data.images.contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class ReferenceSet:
    """Real-data features (N, D) float32, their Gaussian statistics and a fast Fréchet reference."""

    features: np.ndarray
    stats: GaussianStats
    key: str
    path: Path | None = None
    cached: bool = False

    def __post_init__(self) -> None:
        self._frechet: FrechetReference | None = None

    @property
    def frechet(self) -> FrechetReference:
        """Σ_ref^{1/2} precomputed once (the fast FD of every later candidate reuses it)."""
        if self._frechet is None:
            self._frechet = FrechetReference(self.stats)
        return self._frechet


def _load(path: Path, key: str) -> ReferenceSet | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            feats = z["features"]
            stats = GaussianStats(mu=z["mu"], sigma=z["sigma"], n=int(z["n"]))
        return ReferenceSet(feats, stats, key, path, cached=True)
    except (OSError, KeyError, ValueError):
        return None  # missing or damaged: recompute


def reference_set(data: ImageData, features: FeatureExtractor, *, cache: bool = True,
                  cache_dir: str | Path | None = None, progress: bool = False) -> ReferenceSet:
    """Features and statistics of all of ``data`` under ``features`` (cached unless ``cache=False``)."""
    key = f"{data_hash(data)[:20]}-{hashlib.sha256(features.id.encode()).hexdigest()[:20]}"
    path = Path(cache_dir or metrics_cache_dir("reference")) / f"{features.name}-{key}.npz"
    if cache and path.is_file():
        found = _load(path, key)
        if found is not None:
            stage_line(f"reference features ({features.name}, {len(found.features)} images): cached, reused {path}")
            return found
    with stage(f"reference features ({features.name})", f"{len(data.images)} images, one pass" +
               (f", cached in {path}" if cache else "")):
        feats = features(data.images, progress=progress).numpy().astype(np.float32)
        stats = GaussianStats.from_features(feats)
        if cache:
            with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
                np.savez(fh, features=feats, mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n))
    return ReferenceSet(feats, stats, key, path if cache else None)
