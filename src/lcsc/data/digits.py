"""The embedded scikit-learn digits set (1,797 8×8 grayscale digits, labels 0..9)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from lcsc.data.dataset import ImageData
from lcsc.data.resize import check_resolution, resize_square

__all__ = ["load_digits_data"]


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images N×8×8, labels) as ``sklearn.datasets.load_digits`` returns them, read from the file it reads
    (scikit-learn's bundled ``digits.csv.gz``) without importing scikit-learn, which costs a second or more at the
    start of every process that trains or scores on digits; ``load_digits`` itself when the file is not there."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    with gzip.open(path, mode="rt", encoding="utf-8") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def load_digits_data(resolution: int | None = None) -> ImageData:
    """Return scikit-learn's digits as 1×8×8 images in [-1, 1], bilinearly resized to ``resolution``."""
    resolution = check_resolution(resolution)
    pixels, target = _digits_arrays()
    images = torch.as_tensor(pixels, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0 * 2.0 - 1.0
    if resolution is not None and resolution != 8:
        images = resize_square(images, resolution)
    labels = torch.as_tensor(target, dtype=torch.int64)
    return ImageData(images=images.contiguous(), labels=labels, num_classes=10, source="digits")
