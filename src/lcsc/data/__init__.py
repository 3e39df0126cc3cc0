"""Training data: the embedded digits set, image folders and ``.npz`` arrays, as float images in [-1, 1]."""

from __future__ import annotations

from lcsc.data.dataset import ImageData
from lcsc.data.digits import load_digits_data
from lcsc.data.folder import load_image_folder
from lcsc.data.load import load_data
from lcsc.data.npz import load_npz

__all__ = ["ImageData", "load_data", "load_digits_data", "load_image_folder", "load_npz"]
