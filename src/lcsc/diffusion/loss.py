# DDPM ε-prediction loss (Ho et al. 2020, Eq. 14 "L_simple"), with pluggable timestep sampling and loss weighting.
"""``DDPMLoss``: E_t,ε w(t)·‖ε − ε̂(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t)‖², t drawn by a timestep sampler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lcsc.diffusion.schedule import NoiseSchedule

__all__ = ["DDPMLoss", "uniform_timesteps"]

TimestepSampler = Callable[[int, int, torch.Generator, torch.device, int], torch.Tensor]
LossWeighting = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def uniform_timesteps(batch: int, T: int, generator: torch.Generator, device: torch.device, step: int) -> torch.Tensor:
    """t ~ U{0, …, T−1} (the DDPM default)."""
    return torch.randint(0, T, (batch,), generator=generator, device=device)


@dataclass
class DDPMLoss:
    """Mean over the batch of w(t)·MSE(ε, ε̂). ``timesteps(batch, T, gen, device, step)`` draws t;
    ``weighting(t, alphas_cumprod)`` returns w(t) (None: w = 1)."""

    schedule: NoiseSchedule
    timesteps: TimestepSampler = uniform_timesteps
    weighting: LossWeighting | None = None
    _table: torch.Tensor | None = field(default=None, repr=False)

    def alphas_cumprod(self, device: torch.device) -> torch.Tensor:
        if self._table is None or self._table.device != device:
            self._table = self.schedule.alphas_cumprod().float().to(device)
        return self._table

    def __call__(
        self,
        model: nn.Module,
        x0: torch.Tensor,
        labels: torch.Tensor | None,
        generator: torch.Generator,
        step: int,
        target_model: nn.Module | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        ac = self.alphas_cumprod(x0.device)
        t = self.timesteps(x0.shape[0], self.schedule.num_train_timesteps, generator, x0.device, step)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        a = ac[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        per_sample = (model(x_t, t.float(), labels) - noise).float().pow(2).flatten(1).mean(1)
        mse = float(per_sample.mean().detach())
        if self.weighting is not None:
            per_sample = per_sample * self.weighting(t, ac)
        return per_sample.mean(), {"mse": mse}
