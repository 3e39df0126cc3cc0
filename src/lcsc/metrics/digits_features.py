# Digits feature spaces: penultimate layers of classifiers trained on a fixed 80% split (the Inception / CLIP role).
"""``digits_features("digits")`` (a CNN) and ``digits_features("digits2")`` (an MLP, other seed): two independent
feature spaces for 8×8 digits. Trained deterministically on first use and cached under the user cache directory,
keyed by a hash of the recipe and the data; the held-out accuracy on the other 20% is stored with the weights."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from lcsc.atomic import atomic_path
from lcsc.data import ImageData, load_digits_data
from lcsc.metrics.features import ClassifierFeatures, metrics_cache_dir

__all__ = ["DigitsSpec", "DIGITS_SPECS", "DigitsCNN", "DigitsMLP", "digits_features", "train_digits_classifier",
           "digits_split"]

RECIPE_VERSION = 1


@dataclass(frozen=True)
class DigitsSpec:
    arch: str
    seed: int
    epochs: int = 40
    lr: float = 2e-3
    batch_size: int = 64
    split_seed: int = 2024


DIGITS_SPECS = {"digits": DigitsSpec(arch="cnn", seed=0), "digits2": DigitsSpec(arch="mlp", seed=7, epochs=60)}


class DigitsCNN(nn.Module):
    """Two 3×3 conv layers, pooling, a 128-d penultimate layer (the features), a linear head."""

    feature_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class DigitsMLP(nn.Module):
    """A tanh MLP on the 64 pixels: 256 → 96 (the features) → 10."""

    feature_dim = 96

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 96), nn.Tanh())
        self.head = nn.Linear(96, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHS = {"cnn": DigitsCNN, "mlp": DigitsMLP}


def digits_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed 80/20 permutation split of ``n`` indices."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(round(0.8 * n))
    return perm[:cut], perm[cut:]


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def train_digits_classifier(spec: DigitsSpec, data: ImageData) -> tuple[nn.Module, float]:
    """Train ``spec`` on the 80% split (deterministic: own RNG, global RNG untouched); held-out accuracy."""
    train_idx, test_idx = digits_split(len(data), spec.split_seed)
    x, y = data.images, data.labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        net = ARCHS[spec.arch]()
        opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
        gen = torch.Generator().manual_seed(spec.seed + 1)
        for _ in range(spec.epochs):
            order = train_idx[torch.randperm(len(train_idx), generator=gen)]
            for i in range(0, len(order), spec.batch_size):
                b = order[i : i + spec.batch_size]
                loss = nn.functional.cross_entropy(net(x[b]), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
    net.eval()
    return net, _accuracy(net, x[test_idx], y[test_idx])


def _cache_path(name: str, spec: DigitsSpec, data: ImageData, cache_dir: Path | None) -> Path:
    h = hashlib.sha256(json.dumps([RECIPE_VERSION, dataclasses.asdict(spec)]).encode())
    h.update(data.images.numpy().tobytes())
    h.update(data.labels.numpy().tobytes())
    return (cache_dir or metrics_cache_dir("features")) / f"{name}-{h.hexdigest()[:20]}.safetensors"


def load_or_train(name: str, cache_dir: Path | None = None) -> tuple[nn.Module, float, Path]:
    """The classifier ``name`` from the cache, trained and cached first if absent; (net, accuracy, path)."""
    spec, data = DIGITS_SPECS[name], load_digits_data()
    path = _cache_path(name, spec, data, cache_dir)
    net = ARCHS[spec.arch]()
    if path.is_file():
        try:
            net.load_state_dict(load_file(str(path)))
            with safe_open(str(path), framework="pt") as fh:
                return net.eval(), float(fh.metadata()["held_out_accuracy"]), path
        except Exception:  # noqa: BLE001 - a damaged cache entry is retrained and rewritten
            pass
    net, acc = train_digits_classifier(spec, data)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp),
                  metadata={"held_out_accuracy": repr(acc), "spec": json.dumps(dataclasses.asdict(spec))})
    return net, acc, path


def digits_features(name: str = "digits", device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                    batch_size: int = 1000) -> ClassifierFeatures:
    """Feature space ``"digits"`` (FD_digits, CNN) or ``"digits2"`` (independent MLP) for 1×8×8 images."""
    if name not in DIGITS_SPECS:
        from lcsc.errors import ConfigError

        raise ConfigError(f"unknown digits feature space {name!r}; choose one of {sorted(DIGITS_SPECS)}")
    net, acc, path = load_or_train(name, Path(cache_dir) if cache_dir else None)
    features = ClassifierFeatures(net, name, (1, 8, 8), device, batch_size)
    features.held_out_accuracy = acc
    features.weights_path = path
    return features
