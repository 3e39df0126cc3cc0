"""``load_data``: one data spec (``digits``, an image folder, an ``.npz`` file) to an :class:`ImageData`."""

from __future__ import annotations

from pathlib import Path

from lcsc.data.dataset import ImageData
from lcsc.data.digits import load_digits_data
from lcsc.data.folder import load_image_folder
from lcsc.data.npz import load_npz
from lcsc.errors import DataError

__all__ = ["load_data"]


def load_data(spec: str, resolution: int | None = None) -> ImageData:
    """Load ``"digits"``, an image folder, or an ``.npz`` file, optionally resized to ``resolution``."""
    spec = str(spec)
    if spec == "digits":
        return load_digits_data(resolution)
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_image_folder(path, resolution)
    if path.suffix.lower() == ".npz":
        return load_npz(path, resolution)
    what = "is a file but not an .npz archive" if path.exists() else "does not exist"
    raise DataError(f"data {spec!r} {what}; expected 'digits', an image folder, or a .npz file")
