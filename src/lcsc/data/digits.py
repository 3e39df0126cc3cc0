"""The embedded scikit-learn digits set (1,797 8×8 grayscale digits, labels 0..9)."""

from __future__ import annotations

import torch

from lcsc.data.dataset import ImageData
from lcsc.data.resize import check_resolution, resize_square

__all__ = ["load_digits_data"]


def load_digits_data(resolution: int | None = None) -> ImageData:
    """Return scikit-learn's digits as 1×8×8 images in [-1, 1], bilinearly resized to ``resolution``."""
    from sklearn.datasets import load_digits

    resolution = check_resolution(resolution)
    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0 * 2.0 - 1.0
    if resolution is not None and resolution != 8:
        images = resize_square(images, resolution)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return ImageData(images=images.contiguous(), labels=labels, num_classes=10, source="digits")
