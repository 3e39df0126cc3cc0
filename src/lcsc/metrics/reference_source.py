# FD/FID reference statistics from an image folder, an .npz of images, or an .npz of precomputed FID statistics.
"""``load_reference``: the reference side of an FD for data given on the command line (``--reference``).

An ``.npz`` holding ``mu`` and ``sigma`` is taken as precomputed statistics (the standard FID stats files of
pytorch-fid / TTUR, for Inception: 2048-d from the same TF-FID Inception-v3 pool3 lcsc uses); ``features`` (N×D), when
present (lcsc's own reference caches), allow KID too. Any other ``.npz`` and any folder are images, resized to the
model's resolution and scored through the feature space (the result is cached like every reference set).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import NoReturn

import numpy as np

from lcsc.data import load_image_folder, load_npz
from lcsc.errors import ConfigError, DataError
from lcsc.metrics.features import FeatureExtractor
from lcsc.metrics.frechet import GaussianStats
from lcsc.metrics.reference import ReferenceSet, reference_set
from lcsc.progress import stage, stage_line

__all__ = ["load_reference", "is_stats_file"]


def _arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError, TypeError) as exc:
        raise DataError(f"reference {path}: not a readable .npz archive ({exc})") from None


def is_stats_file(path: str | Path) -> bool:
    """True for an ``.npz`` that holds ``mu`` and ``sigma`` (precomputed FID statistics)."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".npz"):
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return {"mu", "sigma"} <= set(z.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError, TypeError):
        return False


def _stats_reference(path: Path, features: FeatureExtractor) -> ReferenceSet:
    arrays = _arrays(path)
    n = int(arrays["n"]) if "n" in arrays and arrays["n"].size == 1 else 0
    try:
        stats = GaussianStats(mu=arrays["mu"], sigma=arrays["sigma"], n=n)
    except ConfigError as exc:
        raise DataError(f"reference {path}: {exc}") from None
    if features.dim and stats.dim != features.dim:
        raise DataError(f"reference {path} holds {stats.dim}-d statistics but {features.name} features are "
                        f"{features.dim}-d; compute the statistics in the objective's feature space")
    feats = arrays.get("features")
    if feats is None or feats.ndim != 2 or feats.shape[1] != stats.dim:
        feats = np.empty((0, stats.dim), dtype=np.float32)
    key = "stats-" + hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    return ReferenceSet(feats.astype(np.float32), stats, key, path, cached=True)


def load_reference(spec: str | Path, features: FeatureExtractor, *, resolution: int | None = None,
                   progress: bool = False, cache: bool = True) -> ReferenceSet:
    """Reference statistics (and features when available) for ``features`` from a folder of images, an ``.npz`` of
    images (resized to ``resolution``) or an ``.npz`` of statistics; anything else is a :class:`DataError`.

    Within a process the same (path, features, resolution) returns the same :class:`ReferenceSet` (its images are
    read and its Σ^{1/2} computed once for the search and again for the held-out report otherwise)."""
    path = Path(spec).expanduser()
    memo = (str(path.resolve()), path.stat().st_mtime_ns if path.is_file() else 0, features.id, resolution, cache)
    if memo in _MEMO:
        stage_line(f"reference {path} ({features.name}): reused (already loaded)")
        return _MEMO[memo]
    if path.is_dir():
        with stage("reading reference images", str(path)):
            images = load_image_folder(path, resolution)
        ref = reference_set(images, features, cache=cache, progress=progress)
    elif path.is_file() and path.suffix.lower() == ".npz":
        if is_stats_file(path):
            stage_line(f"reference statistics ({features.name}): read {path}")
            ref = _stats_reference(path, features)
        else:
            with stage("reading reference images", str(path)):
                images = load_npz(path, resolution)
            ref = reference_set(images, features, cache=cache, progress=progress)
    else:
        _refuse(spec, path)
    _MEMO[memo] = ref
    return ref


_MEMO: dict[tuple, ReferenceSet] = {}


def _refuse(spec: str | Path, path: Path) -> NoReturn:
    what = "is a file but not an .npz archive" if path.exists() else "does not exist"
    raise DataError(f"reference {spec} {what}; expected a folder of images, an .npz of images, or an .npz of FID "
                    "statistics (mu, sigma)")
