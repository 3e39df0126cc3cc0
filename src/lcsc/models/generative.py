"""The one generative interface: ``model(x, sigma_or_t, labels)`` for ε-prediction DMs and consistency functions."""

from __future__ import annotations

import torch
from torch import nn

from lcsc.diffusion.schedule import NoiseSchedule
from lcsc.models.config import ModelConfig

__all__ = ["EpsilonModel", "ConsistencyModel", "GenerativeModel", "cm_noise_cond"]


def cm_noise_cond(sigma: torch.Tensor) -> torch.Tensor:
    """Backbone noise condition of a CM: 1000·¼·ln σ, the scale consistency-model code feeds ADM-style nets."""
    return 250.0 * torch.log(sigma.clamp_min(1e-20))


class GenerativeModel(nn.Module):
    """Base: a backbone ``net(x, noise_cond, labels)`` plus the config that rebuilds it.

    Subclasses define ``forward(x, sigma_or_t, labels=None)``; losses and samplers only use that call and the
    scalar attributes of :attr:`config`, never a backbone class.
    """

    kind: str = ""

    def __init__(self, net: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.net = net
        self.config = config

    @staticmethod
    def _expand(level: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
        level = torch.as_tensor(level, dtype=torch.float32, device=x.device)
        return level.expand(x.shape[0]) if level.ndim == 0 else level.float()


class EpsilonModel(GenerativeModel):
    """ε̂(x_t, t): the DDPM noise prediction at discrete (or fractional) step t ∈ [0, T−1]."""

    kind = "dm"

    def __init__(self, net: nn.Module, config: ModelConfig) -> None:
        super().__init__(net, config)
        self.schedule = NoiseSchedule(config.num_train_timesteps, config.beta_schedule)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x, self._expand(t, x), labels)


class ConsistencyModel(GenerativeModel):
    """f(x, σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ)), with f(x, σ_min) = x (Song et al. 2023, Eq. 3)."""

    kind = "cm"

    def boundary(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in) of the EDM boundary-condition parameterisation, shaped (B, 1, 1, 1)."""
        c = self.config
        s = sigma.view(-1, 1, 1, 1)
        c_skip = c.sigma_data**2 / ((s - c.sigma_min) ** 2 + c.sigma_data**2)
        c_out = (s - c.sigma_min) * c.sigma_data / (s**2 + c.sigma_data**2).sqrt()
        c_in = 1.0 / (s**2 + c.sigma_data**2).sqrt()
        return c_skip, c_out, c_in

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor | float, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        sigma = self._expand(sigma, x)
        c_skip, c_out, c_in = self.boundary(sigma)
        return c_skip * x + c_out * self.net(c_in * x, cm_noise_cond(sigma), labels)
