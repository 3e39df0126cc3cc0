"""Image grids: tile a batch of [-1, 1] images into one PIL image or PNG file."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lcsc.atomic import atomic_path
from lcsc.errors import ConfigError, DataError

__all__ = ["PAD_VALUE", "image_grid", "save_image_grid"]

PAD_VALUE = 224
_MIN_CELL = 32


def _check(images: torch.Tensor, nrow: int | None, scale: int | None, pad: int) -> None:
    """Raise if the batch or the layout arguments cannot make a grid."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(f"image grid needs an N×C×H×W tensor with C 1 or 3, got {shape}")
    if images.shape[0] == 0 or images.shape[2] == 0 or images.shape[3] == 0:
        raise DataError(f"image grid needs at least one non-empty image, got shape {tuple(images.shape)}")
    for name, value, low in (("nrow", nrow, 1), ("scale", scale, 1), ("pad", pad, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"image grid {name} must be an integer >= {low}, got {value!r}")


def image_grid(
    images: torch.Tensor, nrow: int | None = None, scale: int | None = None, pad: int = 1
) -> Image.Image:
    """Tile N×C×H×W ``images`` in [-1, 1] (C 1 or 3) into a grid with ``nrow`` images per row.

    ``nrow`` defaults to ceil(sqrt(N)); ``scale`` (nearest-neighbour upscaling factor) defaults to
    the smallest integer making each cell at least 32 px; cells are separated and framed by ``pad``
    light-gray pixels. Returns a mode "L" image for C = 1 and "RGB" for C = 3.
    """
    _check(images, nrow, scale, pad)
    count, channels, height, width = images.shape
    nrow = nrow or math.ceil(math.sqrt(count))
    scale = scale or max(1, math.ceil(_MIN_CELL / min(height, width)))
    rows = math.ceil(count / nrow)
    pixels = ((images.detach().to("cpu", torch.float32).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    cell_h, cell_w = height * scale, width * scale
    grid = torch.full((channels, rows * cell_h + (rows + 1) * pad, nrow * cell_w + (nrow + 1) * pad),
                      PAD_VALUE, dtype=torch.uint8)
    for i in range(count):
        top = pad + (i // nrow) * (cell_h + pad)
        left = pad + (i % nrow) * (cell_w + pad)
        grid[:, top : top + cell_h, left : left + cell_w] = pixels[i]
    array = np.ascontiguousarray(grid.permute(1, 2, 0).numpy())
    return Image.fromarray(array[..., 0] if channels == 1 else array)


def save_image_grid(
    images: torch.Tensor,
    path: str | os.PathLike,
    nrow: int | None = None,
    scale: int | None = None,
    pad: int = 1,
) -> Path:
    """Write :func:`image_grid` of ``images`` to ``path`` as PNG (atomically) and return the path."""
    img = image_grid(images, nrow=nrow, scale=scale, pad=pad)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)
