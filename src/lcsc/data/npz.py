"""Image arrays stored in a NumPy ``.npz`` archive (uint8 N×H×W×C or N×H×W, optional labels)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from lcsc.data.dataset import ImageData
from lcsc.data.resize import check_resolution, resize_square, uint8_to_unit
from lcsc.errors import DataError

__all__ = ["IMAGE_KEYS", "LABEL_KEYS", "load_npz"]

IMAGE_KEYS = ("arr_0", "images", "x")
LABEL_KEYS = ("labels", "y", "arr_1")


def _read_archive(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path`` (no pickles), or DataError naming the file."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(f"npz file {path} does not exist") from exc
    except ValueError as exc:  # numpy reads bytes that are neither zip nor .npy as a refused pickle
        if "pickled" in str(exc):
            raise DataError(f"cannot read npz file {path}: not an .npz archive (neither a zip of arrays nor .npy; "
                            "object arrays are refused)") from exc
        raise DataError(f"cannot read npz file {path}: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read npz file {path}: {exc}") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single .npy array, not an .npz archive")
    try:
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read npz file {path}: {exc}") from exc

def _images(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The uint8 image array as N×H×W×C with C in (1, 3); alpha dropped."""
    key = next((k for k in IMAGE_KEYS if k in arrays), None)
    if key is None:
        raise DataError(f"npz file {path} has no image array: looked for keys {list(IMAGE_KEYS)}, "
                        f"found {sorted(arrays)}")
    arr = arrays[key]
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4) or 0 in arr.shape:
        raise DataError(f"npz file {path} key {key!r} must be a non-empty uint8 array N×H×W×C (C in 1, 3, 4) "
                        f"or N×H×W, got dtype {arrays[key].dtype} shape {arrays[key].shape}")
    return arr[..., :3] if arr.shape[-1] == 4 else arr


def _labels(path: Path, arrays: dict[str, np.ndarray], count: int) -> tuple[torch.Tensor | None, int]:
    """Optional labels (1-D, integer, non-negative, length ``count``) and the class count."""
    key = next((k for k in LABEL_KEYS if k in arrays), None)
    if key is None:
        return None, 0
    arr = arrays[key]
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or arr.shape[0] != count:
        raise DataError(f"npz file {path} key {key!r} must be 1-D integer labels of length {count}, "
                        f"got dtype {arr.dtype} shape {arr.shape}")
    if int(arr.min()) < 0:
        raise DataError(f"npz file {path} key {key!r} holds a negative label ({int(arr.min())})")
    return torch.from_numpy(arr.astype(np.int64)), int(arr.max()) + 1


def load_npz(path: str | os.PathLike, resolution: int | None = None) -> ImageData:
    """Load uint8 images from key arr_0/images/x and optional labels from labels/y/arr_1.

    Non-square images need ``resolution`` (shorter side resized bilinearly, then center-cropped).
    """
    path = Path(path)
    resolution = check_resolution(resolution)
    arrays = _read_archive(path)
    images = _images(path, arrays)
    height, width = images.shape[1:3]
    if resolution is None and height != width:
        raise DataError(f"npz file {path} holds {height}x{width} images, not square; pass --resolution "
                        "to resize and center-crop them")
    labels, num_classes = _labels(path, arrays, images.shape[0])
    tensor = uint8_to_unit(images)
    if resolution is not None:
        tensor = resize_square(tensor, resolution)
    return ImageData(images=tensor, labels=labels, num_classes=num_classes, source=str(path))
