"""Feature extractors: ``features(images) -> (N, D)`` for images in [-1, 1], with a content id for caches."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lcsc.errors import ConfigError
from lcsc.progress import track

__all__ = ["FeatureExtractor", "CallableFeatures", "ClassifierFeatures", "state_hash", "metrics_cache_dir"]


def metrics_cache_dir(sub: str) -> Path:
    """``$LCSC_CACHE_DIR/<sub>`` or ``~/.cache/lcsc/<sub>`` (feature weights, reference statistics)."""
    root = os.environ.get("LCSC_CACHE_DIR") or Path.home() / ".cache" / "lcsc"
    return Path(root) / sub


def state_hash(module: nn.Module) -> str:
    """SHA-256 of a module's state (names, shapes, bytes): changes whenever the function can change."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


class FeatureExtractor:
    """Base: subclasses implement :meth:`_forward` on one batch already on ``device``.

    ``name`` (for tables), ``id`` (content hash: weights + preprocessing, keys reference caches), ``dim``,
    ``input_shape`` ((C, H, W) it requires, or None for any size), ``has_logits`` (a classifier head for IS).
    """

    name: str = "features"
    id: str = ""
    dim: int = 0
    input_shape: tuple[int, int, int] | None = None
    has_logits: bool = False

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 500) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        raise ConfigError(f"feature space {self.name!r} has no classifier head (no Inception Score analogue)")

    def check(self, images: torch.Tensor) -> None:
        """Raise a clear error when ``images`` do not fit this feature space."""
        if images.dim() != 4:
            raise ConfigError(f"{self.name}: images must be N×C×H×W, got shape {tuple(images.shape)}")
        if self.input_shape is not None and tuple(images.shape[1:]) != self.input_shape:
            c, h, w = self.input_shape
            raise ConfigError(f"{self.name} features take {c}×{h}×{w} images, got "
                              f"{'×'.join(map(str, images.shape[1:]))}; choose another feature space")
        if not torch.isfinite(images).all():
            raise ConfigError(f"{self.name}: images contain NaN or Inf")

    @torch.no_grad()
    def _batched(self, images: torch.Tensor, fn, progress: bool) -> torch.Tensor:
        self.check(images)
        out = []
        for i in track(range(0, len(images), self.batch_size), desc=f"{self.name} features",
                       unit=f"batches of {self.batch_size}", progress=progress):
            x = images[i : i + self.batch_size].to(self.device, torch.float32).clamp(-1, 1)
            out.append(fn(x).float().cpu())
        return torch.cat(out) if out else torch.empty(0, self.dim)

    def __call__(self, images: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """(N, D) float32 features on the CPU."""
        return self._batched(images, self._forward, progress)

    def logits(self, images: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """(N, classes) logits of the classifier head (only when ``has_logits``)."""
        return self._batched(images, self._logits, progress)


class ClassifierFeatures(FeatureExtractor):
    """A classifier with ``features(x)`` (penultimate layer) and ``head(f)`` (logits), e.g. the digits nets."""

    has_logits = True

    def __init__(self, net: nn.Module, name: str, input_shape: tuple[int, int, int] | None,
                 device: str | torch.device = "cpu", batch_size: int = 500) -> None:
        super().__init__(device, batch_size)
        self.net = net.to(self.device).eval().requires_grad_(False)
        self.name, self.input_shape = name, input_shape
        self.id = f"{name}-{state_hash(net)[:24]}"
        self.dim = int(getattr(net, "feature_dim", 0))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.net.features(x))


class CallableFeatures(FeatureExtractor):
    """Any ``nn.Module`` or callable ``images -> (N, D)`` as a feature space (your own Inception, CLIP, …).

    ``id`` defaults to the module's weight hash (a plain callable must pass one so caches stay correct).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str, *, id: str | None = None,  # noqa: A002
                 input_shape: tuple[int, int, int] | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 500) -> None:
        super().__init__(device, batch_size)
        if isinstance(fn, nn.Module):
            fn = fn.to(self.device).eval()
            id = id or f"{name}-{state_hash(fn)[:24]}"  # noqa: A001
        if not id:
            raise ConfigError(f"feature extractor {name!r}: a plain callable needs an id (bump it when it changes)")
        self.fn, self.name, self.id, self.input_shape = fn, name, id, input_shape

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fn(x)
        if out.dim() > 2:
            out = out.flatten(2).mean(2)
        self.dim = int(out.shape[1])
        return out
