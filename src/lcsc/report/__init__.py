"""Reports: image grids of samples."""

from __future__ import annotations

from lcsc.report.grid import image_grid, save_image_grid

__all__ = ["image_grid", "save_image_grid"]
