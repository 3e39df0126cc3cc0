# DDPM noise schedules (Ho et al. 2020, Eq. 4; cosine: Nichol & Dhariwal 2021, Eq. 17) via diffusers' DDPMScheduler.
"""The discrete ᾱ_t table shared by the DM loss, the DM samplers and the CD teacher's EDM view."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lcsc.errors import ConfigError

__all__ = ["NoiseSchedule", "DIFFUSERS_BETA_SCHEDULES"]

# lcsc's names (and diffusers' own names, for schedules read from a diffusers scheduler_config.json) → diffusers'.
DIFFUSERS_BETA_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2", "scaled_linear": "scaled_linear",
                            "squaredcos_cap_v2": "squaredcos_cap_v2"}


@dataclass(frozen=True)
class NoiseSchedule:
    """ᾱ_t for t = 0..T−1 with the diffusers beta schedule of the same name.

    ``beta_start`` / ``beta_end`` are the end points of the linear and scaled-linear schedules (diffusers'
    DDPMScheduler defaults 1e-4 and 0.02; the cosine schedule ignores them).
    """

    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 0.0001
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.beta_schedule not in DIFFUSERS_BETA_SCHEDULES:
            raise ConfigError(f"beta schedule {self.beta_schedule!r} must be one of {sorted(DIFFUSERS_BETA_SCHEDULES)}")
        if not 0.0 < self.beta_start < self.beta_end < 1.0:
            raise ConfigError(f"beta_start={self.beta_start}, beta_end={self.beta_end}: need 0 < beta_start < "
                              "beta_end < 1")

    def diffusers_config(self) -> dict:
        """Keyword arguments that make any diffusers scheduler use this training schedule."""
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": DIFFUSERS_BETA_SCHEDULES[self.beta_schedule],
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "prediction_type": "epsilon",
        }

    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t as float64 (cached per schedule)."""
        return _alphas_cumprod(self.num_train_timesteps, self.beta_schedule, self.beta_start, self.beta_end).clone()

    def sigmas(self) -> torch.Tensor:
        """EDM noise level of each DDPM step: σ_t = √((1−ᾱ_t)/ᾱ_t), increasing in t."""
        ac = self.alphas_cumprod()
        return ((1 - ac) / ac).sqrt()


_CACHE: dict[tuple[int, str, float, float], torch.Tensor] = {}


def _alphas_cumprod(T: int, name: str, beta_start: float = 0.0001, beta_end: float = 0.02) -> torch.Tensor:
    key = (T, name, float(beta_start), float(beta_end))
    if key not in _CACHE:
        from diffusers import DDPMScheduler

        sched = DDPMScheduler(num_train_timesteps=T, beta_schedule=DIFFUSERS_BETA_SCHEDULES[name],
                              beta_start=beta_start, beta_end=beta_end)
        _CACHE[key] = sched.alphas_cumprod.to(torch.float64)
    return _CACHE[key]
