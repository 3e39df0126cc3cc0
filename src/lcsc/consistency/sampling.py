# Multistep consistency sampling (Song et al. 2023, Algorithm 1) on a Karras σ grid, with a diffusers-style API.
"""``ConsistencySampler``: set_timesteps(n) / step(denoised, σ, sample, generator); noise on the generator's device."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lcsc.consistency.karras import karras_sigmas

__all__ = ["ConsistencySampler", "SamplerOutput", "sample_cm", "integrate_cm"]


@dataclass
class SamplerOutput:
    prev_sample: torch.Tensor


# Why not diffusers' CMStochasticIterativeScheduler (checked in tests/consistency/test_sampling_exact.py): with
# num_train_timesteps = n + 1 its σ levels are ours and, fed the raw output F = (f − c_skip·x)/c_out, it gives our
# samples up to float32 rounding. But (1) its step() applies its own boundary c_skip/c_out (σ_data from its config) to
# the raw network output, while ConsistencyModel.forward already returns f(x, σ), so every call would need that lossy
# inversion; (2) it draws re-noising inside step() from a generator (also at the last step, times 0) and cannot take
# pre-drawn noise, which generate()'s SamplingInputs.step_noise needs (prefix-exact samples, the same on CPU and GPU);
# (3) its timesteps are c_noise = 250·ln σ, not σ, and it clamps x̂₀ to [−1, 1] by default.
class ConsistencySampler:
    """σ_max → σ_{n−1} … levels: x₀ = f(x, σ_i); x ← x₀ + √(σ_{i+1}² − σ_min²)·z between steps."""

    def __init__(self, sigma_min: float, sigma_max: float, rho: float = 7.0) -> None:
        self.sigma_min, self.sigma_max, self.rho = sigma_min, sigma_max, rho
        self.init_noise_sigma = sigma_max
        self.timesteps = torch.tensor([sigma_max])

    def set_timesteps(self, num_inference_steps: int) -> None:
        """The first ``n`` levels of an (n+1)-level Karras grid, descending from σ_max (σ_min itself is skipped)."""
        if num_inference_steps < 1:
            raise ValueError(f"NFE {num_inference_steps} must be >= 1")
        grid = karras_sigmas(num_inference_steps + 1, self.sigma_min, self.sigma_max, self.rho)
        self.timesteps = grid.flip(0)[:-1].float()

    def step(
        self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor,
        generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
    ) -> SamplerOutput:
        """From the consistency output at ``timestep``, re-noise to the next level (none after the last), with
        ``noise`` when given, else a draw from ``generator``."""
        idx = int((self.timesteps - float(timestep)).abs().argmin())
        if idx == len(self.timesteps) - 1:
            return SamplerOutput(model_output)
        nxt = float(self.timesteps[idx + 1])
        if noise is None:  # drawn where the generator lives (torch refuses a CUDA generator for a CPU draw)
            noise = torch.randn(sample.shape, generator=generator,
                                device=generator.device if generator is not None else "cpu")
        z = noise.to(sample.device)
        return SamplerOutput(model_output + (nxt**2 - self.sigma_min**2) ** 0.5 * z)


def integrate_cm(model: nn.Module, noise: torch.Tensor, generator: torch.Generator | None,
                 labels: torch.Tensor | None = None, nfe: int = 1, step_noise: torch.Tensor | None = None,
                 call=None) -> torch.Tensor:
    """The sampling loop of :func:`sample_cm` without ``no_grad`` (differentiable in the weights with autograd on);
    ``call(model, x, sigma, labels)`` evaluates the network (default: ``model(x, sigma, labels)``)."""
    c = model.config
    sampler = ConsistencySampler(c.sigma_min, c.sigma_max, c.rho)
    sampler.set_timesteps(nfe)
    x = noise * sampler.init_noise_sigma
    for i, sigma in enumerate(sampler.timesteps):
        level = torch.full((x.shape[0],), float(sigma), device=x.device)
        denoised = model(x, level, labels) if call is None else call(model, x, level, labels)
        z = step_noise[i] if step_noise is not None and i < len(step_noise) else None
        x = sampler.step(denoised, sigma, x, generator, noise=z).prev_sample
    return x


@torch.no_grad()
def sample_cm(
    model: nn.Module,
    noise: torch.Tensor,
    generator: torch.Generator | None,
    labels: torch.Tensor | None = None,
    nfe: int = 1,
    step_noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample a consistency model in ``nfe`` steps starting from ``noise`` ~ N(0, I) (scaled by σ_max here); the
    re-noising draws come from ``step_noise`` ((nfe − 1, B, …)) when given, else from ``generator``."""
    return integrate_cm(model, noise, generator, labels, nfe, step_noise)
