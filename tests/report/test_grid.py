"""Image grids: layout, size, and the PNG written to disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from lcsc.errors import DataError
from lcsc.report import image_grid, save_image_grid


def test_grid_png_written(tmp_path: Path) -> None:
    images = torch.rand(10, 1, 8, 8) * 2 - 1
    out = save_image_grid(images, tmp_path / "sub" / "grid.png")
    assert out == tmp_path / "sub" / "grid.png"
    with Image.open(out) as img:
        assert img.format == "PNG" and img.mode == "L"
        # 4 per row, 3 rows, cells 8*4 = 32 px, 1 px padding around and between
        assert img.size == (4 * 32 + 5, 3 * 32 + 4)
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]


def test_grid_rgb_explicit_layout_and_pixels() -> None:
    images = torch.full((3, 3, 2, 2), -1.0)
    images[1] = 1.0
    img = image_grid(images, nrow=3, scale=2, pad=1)
    assert img.mode == "RGB" and img.size == (3 * 4 + 4, 4 + 2)
    assert img.getpixel((1, 1)) == (0, 0, 0)
    assert img.getpixel((6, 1)) == (255, 255, 255)
    pad = img.getpixel((0, 0))
    assert pad[0] == pad[1] == pad[2] and 128 < pad[0] < 255


def test_grid_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="C 1 or 3"):
        image_grid(torch.zeros(2, 2, 4, 4))
