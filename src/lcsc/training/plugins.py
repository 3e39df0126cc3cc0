"""Registries of pluggable timestep samplers, loss weightings and optimiser schedules (looked up by name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lcsc.diffusion.loss import uniform_timesteps
from lcsc.errors import ConfigError
from lcsc.training.clts import CLTSSampler
from lcsc.training.mdlrc import MomentumDecaySchedule
from lcsc.training.minsnr import MinSNRWeighting

__all__ = [
    "TIMESTEP_SAMPLERS",
    "LOSS_WEIGHTINGS",
    "OPTIM_SCHEDULES",
    "ConstantSchedule",
    "register",
    "make_plugin",
]


class ConstantSchedule:
    """Learning rate ``lr`` after a linear warm-up of ``warmup`` iterations; momentum unchanged."""

    def __init__(self, lr: float, warmup: int = 0, total_steps: int = 1, **_: Any) -> None:
        """Extra options (momentum settings for other schedules) are accepted and ignored."""
        self.lr, self.warmup = lr, warmup

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> dict[str, float]:
        """Set the hyper-parameters for optimizer step ``step`` (1-based); returns them for the log."""
        lr = self.lr * min(1.0, step / self.warmup) if self.warmup else self.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        return {"lr": lr}


def _uniform_factory(**_: Any) -> Callable:
    return uniform_timesteps


def _clts_factory(num_train_timesteps: int, total_steps: int, mu: float = 0.3, sigma: float | None = None,
                  target: int | None = None, **_: Any) -> CLTSSampler:
    return CLTSSampler(num_train_timesteps, total_steps, mu=mu, sigma=sigma, target=target)


def _minsnr_factory(gamma: float = 5.0, **_: Any) -> MinSNRWeighting:
    return MinSNRWeighting(gamma)


def _md_factory(**options: Any) -> MomentumDecaySchedule:
    return MomentumDecaySchedule(**{**options, "compensate": False})


# name → factory(**options) → plug-in object. Timestep samplers: f(batch, T, generator, device, step) -> t;
# weightings: f(t, alphas_cumprod) -> w (None: no weighting); schedules: obj.apply(optimizer, step) -> dict.
TIMESTEP_SAMPLERS: dict[str, Callable[..., Any]] = {"uniform": _uniform_factory, "clts": _clts_factory}
LOSS_WEIGHTINGS: dict[str, Callable[..., Any]] = {"none": lambda **_: None, "minsnr": _minsnr_factory}
OPTIM_SCHEDULES: dict[str, Callable[..., Any]] = {"constant": ConstantSchedule, "md": _md_factory,
                                                  "mdlrc": MomentumDecaySchedule}


def register(registry: dict[str, Callable[..., Any]], name: str, factory: Callable[..., Any]) -> None:
    """Add a plug-in factory under ``name`` (e.g. CLTS, Min-SNR, MDLRC)."""
    registry[name] = factory


def make_plugin(registry: dict[str, Callable[..., Any]], kind: str, name: str, **options: Any) -> Any:
    """Instantiate ``name`` from ``registry``; an unknown name is a :class:`ConfigError` listing the choices."""
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of {sorted(registry)}")
    return registry[name](**options)
