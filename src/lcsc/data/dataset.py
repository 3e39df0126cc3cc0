"""The in-memory image dataset every loader returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lcsc.errors import ConfigError, DataError

__all__ = ["ImageData"]


@dataclass(frozen=True, eq=False)
class ImageData:
    """Square images as float32 N×C×H×W in [-1, 1], with optional int64 labels.

    ``num_classes`` is 0 when ``labels`` is None; ``source`` says where the images came from.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int
    source: str

    def __post_init__(self) -> None:
        imgs = self.images
        if imgs.dim() != 4 or imgs.dtype != torch.float32 or imgs.shape[0] == 0:
            raise DataError(f"{self.source}: images must be a non-empty float32 N×C×H×W tensor, "
                            f"got dtype {imgs.dtype} shape {tuple(imgs.shape)}")
        if imgs.shape[-1] != imgs.shape[-2]:
            raise DataError(f"{self.source}: images must be square, got {imgs.shape[-2]}×{imgs.shape[-1]}")
        if self.labels is None:
            if self.num_classes != 0:
                raise DataError(f"{self.source}: num_classes is {self.num_classes} but there are no labels")
            return
        if self.labels.dtype != torch.int64 or tuple(self.labels.shape) != (imgs.shape[0],):
            raise DataError(f"{self.source}: labels must be int64 of shape ({imgs.shape[0]},), got "
                            f"dtype {self.labels.dtype} shape {tuple(self.labels.shape)}")
        if self.num_classes < 1 or int(self.labels.min()) < 0 or int(self.labels.max()) >= self.num_classes:
            raise DataError(f"{self.source}: labels must lie in [0, {self.num_classes}), got "
                            f"[{int(self.labels.min())}, {int(self.labels.max())}]")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels C (1 or 3)."""
        return int(self.images.shape[1])

    @property
    def resolution(self) -> int:
        """Side length H (= W) of the square images."""
        return int(self.images.shape[2])

    def sample_batch(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draw ``batch_size`` images (with replacement) using the CPU ``generator``; labels or None."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        labels = None if self.labels is None else self.labels[idx]
        return self.images[idx], labels

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: source, count, channels, resolution, num_classes."""
        return {
            "source": self.source,
            "count": len(self),
            "channels": self.channels,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
        }

