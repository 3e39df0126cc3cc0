"""Folders of PNG/JPEG images, labelled by subfolder when laid out ImageFolder-style."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lcsc.data.dataset import ImageData
from lcsc.data.resize import check_resolution, uint8_to_unit
from lcsc.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _find_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, hidden files and folders skipped), sorted by relative path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _labels_for(root: Path, files: list[Path]) -> tuple[torch.Tensor | None, int]:
    """Labels from immediate subfolder names when every image sits in one; else (None, 0)."""
    parts = [f.relative_to(root).parts for f in files]
    if any(len(p) != 2 for p in parts):
        return None, 0
    classes = sorted({p[0] for p in parts})
    index = {name: i for i, name in enumerate(classes)}
    return torch.tensor([index[p[0]] for p in parts], dtype=torch.int64), len(classes)


def _read(path: Path) -> Image.Image:
    """Open and decode ``path`` fully, as mode "L" if grayscale else "RGB"."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("L" if img.mode == "L" else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


def _fit(img: Image.Image, path: Path, resolution: int | None, expected: tuple[int, int] | None) -> Image.Image:
    """Resize+center-crop to ``resolution``, or check the size against ``expected`` (first image's size)."""
    width, height = img.size
    if resolution is None:
        if expected is None and width != height:
            raise DataError(f"image {path} is {width}x{height}, not square; pass --resolution to "
                            "resize and center-crop every image")
        if expected is not None and (width, height) != expected:
            raise DataError(f"image {path} is {width}x{height} but {expected[0]}x{expected[1]} was "
                            "expected (the size of the first image); pass --resolution to resize and "
                            "center-crop every image")
        return img
    scale = resolution / min(width, height)
    new_w, new_h = max(resolution, round(width * scale)), max(resolution, round(height * scale))
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - resolution) // 2, (new_h - resolution) // 2
    return img.crop((left, top, left + resolution, top + resolution))


def load_image_folder(path: str | os.PathLike, resolution: int | None = None) -> ImageData:
    """Load every .png/.jpg/.jpeg under ``path`` as 3-channel RGB (1 channel if all are grayscale "L").

    Labels come from sorted immediate subfolder names when every image lies in one. Without
    ``resolution`` all images must share one square size; with it, the shorter side is resized
    (bicubic) to ``resolution`` and the center square kept.
    """
    root = Path(path)
    resolution = check_resolution(resolution)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    files = _find_images(root)
    if not files:
        raise DataError(f"image folder {root} holds no .png, .jpg or .jpeg files")
    arrays, gray, expected = [], True, None
    for file in files:
        img = _fit(_read(file), file, resolution, expected)
        expected = expected or img.size
        gray = gray and img.mode == "L"
        arrays.append(np.asarray(img, dtype=np.uint8))
    if gray:
        stacked = np.stack(arrays)[..., None]
    else:
        stacked = np.stack([a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays])
    labels, num_classes = _labels_for(root, files)
    return ImageData(images=uint8_to_unit(stacked), labels=labels, num_classes=num_classes, source=str(root))
