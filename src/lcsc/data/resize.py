"""Resizing helpers shared by the loaders: shorter-side resize plus center crop to a square."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lcsc.errors import ConfigError

__all__ = ["check_resolution", "resize_square", "uint8_to_unit"]

_CHUNK = 1024


def check_resolution(resolution: int | None) -> int | None:
    """Return ``resolution`` unchanged, or raise :class:`ConfigError` if it is not a positive int."""
    if resolution is None:
        return None
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ConfigError(f"resolution must be a positive integer, got {resolution!r}")
    return resolution


def uint8_to_unit(array: np.ndarray) -> torch.Tensor:
    """Turn a uint8 N×H×W×C array into a float32 N×C×H×W tensor scaled to [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    return (tensor.to(torch.float32) / 127.5 - 1.0).contiguous()


def _target_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """Size after scaling the shorter side to ``resolution`` (the longer side rounded, at least it)."""
    if height <= width:
        return resolution, max(resolution, round(width * resolution / height))
    return max(resolution, round(height * resolution / width)), resolution


def resize_square(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize float N×C×H×W ``images`` so the shorter side is ``resolution``, then center-crop to a square.

    Bilinear interpolation, antialiased where a side shrinks; processed in chunks to bound memory.
    Values are clamped back to [-1, 1]. Returns ``images`` itself when nothing changes.
    """
    height, width = images.shape[-2:]
    if height == width == resolution:
        return images
    new_h, new_w = _target_size(height, width, resolution)
    antialias = new_h < height or new_w < width
    chunks = []
    for start in range(0, images.shape[0], _CHUNK):
        part = images[start : start + _CHUNK]
        if (new_h, new_w) != (height, width):
            part = F.interpolate(part, size=(new_h, new_w), mode="bilinear", align_corners=False,
                                 antialias=antialias)
        top = (new_h - resolution) // 2
        left = (new_w - resolution) // 2
        chunks.append(part[..., top : top + resolution, left : left + resolution].clamp(-1.0, 1.0))
    return torch.cat(chunks).contiguous()
