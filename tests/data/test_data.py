"""Loaders: embedded digits, image folders, .npz archives, and batch sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lcsc.data import ImageData, load_data, load_digits_data, load_image_folder, load_npz
from lcsc.errors import DataError


def _png(path: Path, size: tuple[int, int], mode: str = "RGB", value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, 0)
    Image.new(mode, size, color).save(path)
    return path


def test_digits_shape_range_labels() -> None:
    data = load_digits_data()
    assert tuple(data.images.shape) == (1797, 1, 8, 8)
    assert data.images.dtype == torch.float32
    assert data.images.min() >= -1 and data.images.max() <= 1
    assert data.images.min() == -1 and data.images.max() == 1
    assert data.labels is not None and data.labels.dtype == torch.int64
    assert sorted(data.labels.unique().tolist()) == list(range(10))
    assert (data.num_classes, data.channels, data.resolution, len(data)) == (10, 1, 8, 1797)
    assert data.describe() == {"source": "digits", "count": 1797, "channels": 1, "resolution": 8,
                               "num_classes": 10}


def test_digits_read_without_sklearn_equal_sklearns_load_digits(monkeypatch) -> None:
    """The bundled file read directly gives scikit-learn's arrays, as does the fallback to ``load_digits``."""
    import importlib.util

    from sklearn.datasets import load_digits

    bunch = load_digits()
    direct = load_digits_data()
    expect = torch.as_tensor(bunch.images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0 * 2.0 - 1.0
    assert torch.equal(direct.images, expect) and torch.equal(direct.labels, torch.as_tensor(bunch.target))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # no file to read: load_digits
    fallback = load_digits_data()
    assert torch.equal(fallback.images, expect) and torch.equal(fallback.labels, direct.labels)


def test_digits_resized() -> None:
    data = load_data("digits", resolution=16)
    assert tuple(data.images.shape) == (1797, 1, 16, 16)
    assert data.images.min() >= -1 and data.images.max() <= 1


def test_folder_labels_from_subfolders(tmp_path: Path) -> None:
    for cls, n in (("cat", 2), ("dog", 3)):
        for i in range(n):
            _png(tmp_path / cls / f"{i}.PNG", (8, 8))
    data = load_data(str(tmp_path))
    assert tuple(data.images.shape) == (5, 3, 8, 8)
    assert data.num_classes == 2
    assert data.labels is not None and data.labels.tolist() == [0, 0, 1, 1, 1]
    assert data.source == str(tmp_path)


def test_folder_unlabeled_and_grayscale(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", (6, 6), mode="L", value=0)
    _png(tmp_path / "sub" / "b.png", (6, 6), mode="L", value=255)
    (tmp_path / "notes.txt").write_text("ignored")
    data = load_image_folder(tmp_path)
    assert tuple(data.images.shape) == (2, 1, 6, 6)
    assert data.labels is None and data.num_classes == 0
    assert data.images[0].eq(-1).all() and data.images[1].eq(1).all()


def test_folder_resolution_resize_and_crop(tmp_path: Path) -> None:
    _png(tmp_path / "wide.jpg", (40, 20))
    _png(tmp_path / "tall.png", (10, 30))
    _png(tmp_path / "gray.jpeg", (16, 16), mode="L")
    data = load_image_folder(tmp_path, resolution=12)
    assert tuple(data.images.shape) == (3, 3, 12, 12)
    assert data.images.min() >= -1 and data.images.max() <= 1


def test_folder_mixed_sizes_need_resolution(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", (8, 8))
    _png(tmp_path / "b_odd.png", (10, 10))
    with pytest.raises(DataError, match="b_odd.png") as info:
        load_image_folder(tmp_path)
    assert "--resolution" in str(info.value) and "8x8" in str(info.value)


def test_folder_non_square_needs_resolution(tmp_path: Path) -> None:
    _png(tmp_path / "rect.png", (8, 6))
    with pytest.raises(DataError, match="rect.png.*not square"):
        load_image_folder(tmp_path)


def test_folder_empty(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no .png") as info:
        load_data(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_folder_corrupt_file(tmp_path: Path) -> None:
    _png(tmp_path / "good.png", (8, 8))
    (tmp_path / "broken.png").write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(DataError, match="broken.png"):
        load_image_folder(tmp_path)


def test_npz_round_trip_with_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 5, 5, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 0, 1, 4])
    path = tmp_path / "set.npz"
    np.savez(path, images=images, labels=labels)
    data = load_data(str(path))
    assert tuple(data.images.shape) == (7, 3, 5, 5)
    back = ((data.images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(back, images)
    assert data.labels is not None and data.labels.tolist() == labels.tolist()
    assert data.num_classes == 5


def test_npz_grayscale_alpha_and_resize(tmp_path: Path) -> None:
    np.savez(tmp_path / "g.npz", np.zeros((3, 4, 4), dtype=np.uint8))
    gray = load_npz(tmp_path / "g.npz")
    assert tuple(gray.images.shape) == (3, 1, 4, 4) and gray.labels is None
    np.savez(tmp_path / "a.npz", x=np.full((2, 10, 20, 4), 255, dtype=np.uint8))
    rgba = load_npz(tmp_path / "a.npz", resolution=8)
    assert tuple(rgba.images.shape) == (2, 3, 8, 8)
    assert torch.allclose(rgba.images, torch.ones(()))
    with pytest.raises(DataError, match="not square"):
        load_npz(tmp_path / "a.npz")


def test_npz_bad_contents(tmp_path: Path) -> None:
    np.savez(tmp_path / "f.npz", images=np.zeros((2, 4, 4, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"f\.npz.*'images'.*float32"):
        load_npz(tmp_path / "f.npz")
    np.savez(tmp_path / "k.npz", pixels=np.zeros((2, 4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="pixels"):
        load_npz(tmp_path / "k.npz")
    np.savez(tmp_path / "l.npz", images=np.zeros((2, 4, 4), dtype=np.uint8), y=np.zeros(3, dtype=np.int64))
    with pytest.raises(DataError, match="'y'.*length 2"):
        load_npz(tmp_path / "l.npz")
    with pytest.raises(DataError, match="missing.npz"):
        load_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="junk.npz"):
        load_npz(tmp_path / "junk.npz")


def test_unknown_spec(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere.*digits"):
        load_data(str(tmp_path / "nowhere"))
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(DataError, match="data.csv"):
        load_data(str(tmp_path / "data.csv"))


def test_sample_batch_reproducible() -> None:
    data = load_digits_data()
    x1, y1 = data.sample_batch(16, torch.Generator().manual_seed(3))
    x2, y2 = data.sample_batch(16, torch.Generator().manual_seed(3))
    x3, _ = data.sample_batch(16, torch.Generator().manual_seed(4))
    assert tuple(x1.shape) == (16, 1, 8, 8) and y1 is not None and y1.shape == (16,)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_sample_batch_resumes_from_generator_state() -> None:
    data = ImageData(images=torch.rand(20, 1, 4, 4) * 2 - 1, labels=None, num_classes=0, source="test")
    gen = torch.Generator().manual_seed(0)
    data.sample_batch(4, gen)
    state = gen.get_state()
    a, labels = data.sample_batch(4, gen)
    b, _ = data.sample_batch(4, torch.Generator().set_state(state))
    assert labels is None and torch.equal(a, b)
