# Digits feature spaces: penultimate layers of classifiers trained on a fixed 80% split (the Inception / CLIP role).
"""Four independent feature spaces for 8×8 digits: ``"digits"`` (a CNN, Adam, no augmentation), ``"digits2"`` (a tanh
MLP, other seed), ``"digits3"`` (a differently shaped CNN — 5×5 convs, max-pooling, GELU, a 64-d bottleneck —
trained with another recipe: SGD + momentum, cosine learning rate, label smoothing, and augmentations the others never
see: random ±1-pixel shifts, contrast jitter and additive pixel noise; its own split seed) and ``"digits4"`` (a small
vision transformer — 2×2 patches, a class token, two pre-norm attention blocks — trained with AdamW, weight decay,
warm-up + cosine learning rate and ±1-pixel shifts, on its own split; a report-only space, :mod:`lcsc.protocol`).
Trained deterministically on first use and cached under the user cache directory, keyed by a hash of the recipe and
the data; the held-out accuracy on the other 20% is stored with the weights."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from lcsc.atomic import atomic_path
from lcsc.data import ImageData, load_digits_data
from lcsc.metrics.features import ClassifierFeatures, metrics_cache_dir
from lcsc.progress import stage

__all__ = ["DigitsSpec", "DIGITS_SPECS", "DigitsCNN", "DigitsMLP", "DigitsCNN5", "DigitsViT", "digits_features", "train_digits_classifier",
           "digits_split"]

RECIPE_VERSION = 1


@dataclass(frozen=True)
class DigitsSpec:
    """A feature network's recipe. ``optimizer`` "adam", "sgd" (momentum 0.9, cosine lr) or "adamw" (weight decay
    0.05, 5 % linear warm-up then cosine lr); ``augment`` "none", "shift" (±1-pixel shifts) or "shift-noise" (shifts,
    contrast ×U(0.8, 1.2), N(0, 0.1²) pixel noise)."""

    arch: str
    seed: int
    epochs: int = 40
    lr: float = 2e-3
    batch_size: int = 64
    split_seed: int = 2024
    optimizer: str = "adam"
    augment: str = "none"
    label_smoothing: float = 0.0


DIGITS_SPECS = {
    "digits": DigitsSpec(arch="cnn", seed=0),
    "digits2": DigitsSpec(arch="mlp", seed=7, epochs=60),
    "digits3": DigitsSpec(arch="cnn5", seed=13, epochs=50, lr=0.05, batch_size=32, split_seed=99, optimizer="sgd",
                          augment="shift-noise", label_smoothing=0.1),
    "digits4": DigitsSpec(arch="vit", seed=29, epochs=60, lr=3e-3, batch_size=64, split_seed=4321, optimizer="adamw",
                          augment="shift"),
}


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


class DigitsCNN5(nn.Module):
    """5×5 conv → max-pool → 3×3 conv, GELU throughout, a 64-d bottleneck (the features), a linear head."""

    feature_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 24, 5, padding=2), nn.GELU(), nn.MaxPool2d(2), nn.Conv2d(24, 48, 3, padding=1), nn.GELU(),
            nn.Flatten(), nn.Linear(48 * 16, 64), nn.GELU())
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _Block(nn.Module):
    """A pre-norm transformer block: multi-head self-attention, then a GELU MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class DigitsViT(nn.Module):
    """A small vision transformer (no convolution): 16 patches of 2×2 pixels embedded to 48-d, a class token, learned
    positions, two attention blocks (4 heads); the features are the normalised class token (48-d)."""

    feature_dim = 48

    def __init__(self, dim: int = 48) -> None:
        super().__init__()
        self.embed = nn.Linear(4, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, 17, dim))
        self.blocks = nn.ModuleList(_Block(dim, 4, 2 * dim) for _ in range(2))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        patches = x.reshape(n, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(n, 16, 4)  # row-major 2×2 patches
        tokens = torch.cat([self.cls.expand(n, -1, -1), self.embed(patches)], 1) + self.pos
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHS = {"cnn": DigitsCNN, "mlp": DigitsMLP, "cnn5": DigitsCNN5, "vit": DigitsViT}


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """±1-pixel shifts (:func:`_shift`), contrast ×U(0.8, 1.2) around −1 (the background), N(0, 0.1²) noise."""
    shifted = _shift(x, gen)
    contrast = 0.8 + 0.4 * torch.rand(x.shape[0], 1, 1, 1, generator=gen)
    noisy = (shifted + 1) * contrast - 1 + 0.1 * torch.randn(shifted.shape, generator=gen)
    return noisy.clamp(-1, 1)


def _shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """±1-pixel shifts only (edge-padded crop)."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    dy, dx = torch.randint(0, 3, (2, n), generator=gen)
    return padded.unfold(2, h, 1).unfold(3, w, 1)[torch.arange(n), :, dy, dx]


def digits_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed 80/20 permutation split of ``n`` indices."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(round(0.8 * n))
    return perm[:cut], perm[cut:]


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def _optimizer(spec: DigitsSpec, net: nn.Module, steps: int):
    """The recipe's optimiser and learning-rate schedule (None: constant)."""
    if spec.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=spec.lr, momentum=0.9, weight_decay=5e-4)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    if spec.optimizer == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=spec.lr, weight_decay=0.05)
        warm = max(1, steps // 20)
        return opt, torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, 0.01, 1.0, warm),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps - warm)], [warm])
    return torch.optim.Adam(net.parameters(), lr=spec.lr), None


def train_digits_classifier(spec: DigitsSpec, data: ImageData) -> tuple[nn.Module, float]:
    """Train ``spec`` on the 80% split (deterministic: own RNG, global RNG untouched); held-out accuracy."""
    train_idx, test_idx = digits_split(len(data), spec.split_seed)
    x, y = data.images, data.labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        net = ARCHS[spec.arch]()
        steps = spec.epochs * -(-len(train_idx) // spec.batch_size)
        opt, sched = _optimizer(spec, net, steps)
        gen = torch.Generator().manual_seed(spec.seed + 1)
        augment = {"none": lambda xb, g: xb, "shift": _shift, "shift-noise": _augment}[spec.augment]
        for _ in range(spec.epochs):
            order = train_idx[torch.randperm(len(train_idx), generator=gen)]
            for i in range(0, len(order), spec.batch_size):
                b = order[i : i + spec.batch_size]
                xb = augment(x[b], gen)
                loss = nn.functional.cross_entropy(net(xb), y[b], label_smoothing=spec.label_smoothing)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
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
    cached = _load_cached(name, path)
    if cached is not None:
        return cached
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):  # processes started together train it once; the others wait and load it
        cached = _load_cached(name, path)
        if cached is not None:
            return cached
        with stage(f"{name} feature network", f"training it once (cached in {path})"):
            net, acc = train_digits_classifier(spec, data)
        with atomic_path(path, suffix=".safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp),
                      metadata={"held_out_accuracy": repr(acc), "spec": json.dumps(dataclasses.asdict(spec))})
    return net, acc, path


def _load_cached(name: str, path: Path) -> tuple[nn.Module, float, Path] | None:
    """(net, accuracy, path) from a cache entry; None when absent or damaged (then it is retrained and rewritten)."""
    if not path.is_file():
        return None
    net = ARCHS[DIGITS_SPECS[name].arch]()
    try:
        net.load_state_dict(load_file(str(path)))
        with safe_open(str(path), framework="pt") as fh:
            return net.eval(), float(fh.metadata()["held_out_accuracy"]), path
    except Exception:  # noqa: BLE001 - a damaged cache entry is retrained and rewritten
        return None


def digits_features(name: str = "digits", device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                    batch_size: int = 1000) -> ClassifierFeatures:
    """Feature space ``"digits"`` (FD_digits, CNN), ``"digits2"`` (MLP), ``"digits3"`` (CNN5) or ``"digits4"`` (ViT,
    report-only) for 1×8×8 images."""
    if name not in DIGITS_SPECS:
        from lcsc.errors import ConfigError

        raise ConfigError(f"unknown digits feature space {name!r}; choose one of {sorted(DIGITS_SPECS)}")
    net, acc, path = load_or_train(name, Path(cache_dir) if cache_dir else None)
    features = ClassifierFeatures(net, name, (1, 8, 8), device, batch_size)
    features.held_out_accuracy = acc
    features.weights_path = path
    return features
