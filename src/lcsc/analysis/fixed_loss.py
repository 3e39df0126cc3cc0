# Faster-DM-training paper, Sec. 3.3 (Figs. 3–4): the training loss on one fixed evaluation batch.
"""A deterministic training loss ``f(model) -> scalar`` shared by ``analyze loss-landscape`` and ``analyze hessian``.

DMs: the DDPM ε-MSE (L_simple) computed directly on fixed (x₀, t, ε), all drawn once from a seeded CPU generator
(t uniform on {0…T−1} or from the fully ramped CLTS Gaussian). CMs: the run's CT/CD loss
(:func:`lcsc.training.setup.make_loss` from its ``train_config.json``) on fixed x₀, given a fresh generator with
the same seed at every call, at the run's final step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lcsc.data import ImageData, load_data
from lcsc.errors import ConfigError, LCSCError
from lcsc.models import load_model
from lcsc.models.build import read_data_info, read_model_config

__all__ = ["TIMESTEP_CHOICES", "FixedLoss", "find_train_config", "load_checkpoint", "check_same_architecture",
           "make_fixed_loss", "interpolate_states", "checkpoint_label"]

TIMESTEP_CHOICES = ("uniform", "clts")


def checkpoint_label(path: str | Path) -> str:
    """A checkpoint's short name in plots and tables: ``<folder>/<file stem>``."""
    p = Path(path)
    return f"{p.parent.name}/{p.stem}"


def find_train_config(ckpt: str | Path, levels: int = 4) -> dict | None:
    """The ``train_config.json`` of the run a checkpoint belongs to (searched up to ``levels`` folders up)."""
    folder = Path(ckpt).resolve().parent
    for _ in range(levels):
        cand = folder / "train_config.json"
        if cand.is_file():
            return json.loads(cand.read_text())
        folder = folder.parent
    return None


def load_checkpoint(path: str | Path) -> nn.Module:
    """``load_model`` with any failure turned into one ConfigError naming the file."""
    if not Path(path).is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        return load_model(path)
    except LCSCError as exc:
        raise ConfigError(f"cannot load checkpoint {path}: {exc}") from exc


def check_same_architecture(path_a: str | Path, path_b: str | Path) -> None:
    """ConfigError naming both files unless their model configs and parameter shapes agree."""
    try:
        ca, cb = read_model_config(path_a).to_dict(), read_model_config(path_b).to_dict()
    except LCSCError as exc:
        raise ConfigError(f"cannot compare {path_a} and {path_b}: {exc}") from exc
    diff = sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))
    if diff:
        raise ConfigError(f"{path_a} and {path_b} have different architectures: "
                          + ", ".join(f"{k}={ca.get(k)!r} vs {cb.get(k)!r}" for k in diff))


def interpolate_states(sa: dict[str, torch.Tensor], sb: dict[str, torch.Tensor], t: float) -> dict[str, torch.Tensor]:
    """θ(t) = (1−t)·θ_A + t·θ_B for floating tensors; integer buffers are A's."""
    return {k: (1.0 - t) * v + t * sb[k] if v.is_floating_point() else v for k, v in sa.items()}


@dataclass
class FixedLoss:
    """The training loss of a model on one fixed batch: ``loss(model)`` is a scalar tensor (differentiable)."""

    kind: str
    x0: torch.Tensor
    labels: torch.Tensor | None
    t: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    cm_loss: object | None = None
    cm_step: int = 0
    seed: int = 0

    def __call__(self, model: nn.Module) -> torch.Tensor:
        if self.kind == "dm":
            ac = model.schedule.alphas_cumprod().float()[self.t].view(-1, 1, 1, 1)
            x_t = ac.sqrt() * self.x0 + (1 - ac).sqrt() * self.noise
            return (model(x_t, self.t.float(), self.labels) - self.noise).float().pow(2).mean()
        gen = torch.Generator().manual_seed(self.seed)
        return self.cm_loss(model, self.x0, self.labels, gen, self.cm_step)[0]

    def describe(self) -> dict:
        """JSON-ready summary of the batch."""
        out = {"kind": self.kind, "batch": int(self.x0.shape[0]), "seed": self.seed}
        if self.t is not None:
            out["t_mean"] = float(self.t.float().mean())
        return out


def _load_data_for(path: str | Path) -> ImageData:
    info = read_data_info(path)
    if not info or not info.get("spec"):
        raise ConfigError(f"{path}: its metadata does not record the training data; cannot build the evaluation batch")
    return load_data(info["spec"], info.get("resolution"))


def _draw_timesteps(how: str, batch: int, T: int, gen: torch.Generator, cfg: dict | None) -> torch.Tensor:
    if how == "uniform":
        return torch.randint(0, T, (batch,), generator=gen)
    from lcsc.training.clts import CLTSSampler

    mu = (cfg or {}).get("clts_mu", 0.3)
    sigma = (cfg or {}).get("clts_sigma")
    return CLTSSampler(T, 1, mu=mu, sigma=sigma, target=1)(batch, T, gen, "cpu", 1)  # λ = 1: the full Gaussian


def make_fixed_loss(path: str | Path, batch: int = 64, seed: int = 0, timesteps: str = "uniform",
                    data: ImageData | None = None) -> FixedLoss:
    """The fixed-batch training loss for the run checkpoint ``path`` belongs to (data from its metadata)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"--batch must be a positive integer, got {batch!r}")
    if timesteps not in TIMESTEP_CHOICES:
        raise ConfigError(f"--timesteps must be one of {TIMESTEP_CHOICES}, got {timesteps!r}")
    config = read_model_config(path)
    data = data if data is not None else _load_data_for(path)
    gen = torch.Generator().manual_seed(seed)
    x0, labels = data.sample_batch(batch, gen)
    labels = labels if labels is not None and config.num_classes else None
    cfg = find_train_config(path)
    if config.kind == "dm":
        t = _draw_timesteps(timesteps, batch, config.num_train_timesteps, gen, cfg)
        noise = torch.randn(x0.shape, generator=gen)
        return FixedLoss("dm", x0, labels, t=t, noise=noise, seed=seed)
    if timesteps != "uniform":
        raise ConfigError(f"{path}: --timesteps {timesteps} applies to DMs only (a CM uses its CT/CD loss's levels)")
    if cfg is None:
        raise ConfigError(f"{path}: no train_config.json found above it; a CM's CT/CD loss needs the run's config")
    from lcsc.training.config import TrainConfig
    from lcsc.training.setup import make_loss

    tc = TrainConfig.from_dict({k: v for k, v in cfg.items() if k != "data_info"})
    return FixedLoss("cm", x0, labels, cm_loss=make_loss(tc, torch.device("cpu")), cm_step=tc.iterations, seed=seed)
