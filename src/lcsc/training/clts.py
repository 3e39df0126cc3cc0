# CLTS: curriculum learning timestep schedule (faster-dm-training paper, Eqs. 7–8; exact forms reconstructed).
"""Timestep sampler that moves from uniform t to a Gaussian over t centred at μ = 0.3·T.

Eq. 7 (reconstructed form): p_G(t) ∝ exp(−(t − μ)² / (2σ²)) over t ∈ {0, …, T−1}, with σ defaulting to the
standard deviation of a uniform timestep, √((T² − 1)/12). Eq. 8 (reconstructed ramp): λ_k = min(k / K_target, 1)
and p_k(t) = (1 − λ_k)/T + λ_k·p_G(t), sampled per example as a mixture.
"""

from __future__ import annotations

import math

import torch

from lcsc.errors import ConfigError

__all__ = [
    "CLTSSampler",
    "clts_lambda",
    "default_sigma",
    "gaussian_timestep_probs",
    "uniform_sigma_fraction",
]


def default_sigma(T: int) -> float:
    """Standard deviation (in timesteps) of a uniform timestep on {0, …, T−1}: √((T² − 1)/12)."""
    return math.sqrt((T**2 - 1) / 12)


def uniform_sigma_fraction(T: int | None = None) -> float:
    """Default σ as a fraction of T: ``default_sigma(T) / T``; without ``T`` its large-T limit 1/√12 ≈ 0.2887."""
    if T is None:
        return 1.0 / math.sqrt(12.0)
    return default_sigma(T) / T


def gaussian_timestep_probs(T: int, mu: float, sigma: float) -> torch.Tensor:
    """p_G over t = 0..T−1 (float64, shape (T,), sums to 1); ``mu`` and ``sigma`` in timesteps."""
    if T < 1:
        raise ConfigError(f"number of timesteps T={T} must be >= 1")
    if not sigma > 0:
        raise ConfigError(f"CLTS sigma={sigma} (timesteps) must be > 0")
    t = torch.arange(T, dtype=torch.float64)
    logits = -((t - mu) ** 2) / (2.0 * sigma**2)
    return torch.softmax(logits, dim=0)


def clts_lambda(step: int, target: int) -> float:
    """Curriculum weight λ_k = min(k / K_target, 1), clamped to [0, 1]."""
    if target < 1:
        raise ConfigError(f"CLTS target={target} iterations must be >= 1")
    return min(max(step / target, 0.0), 1.0)


class CLTSSampler:
    """Timestep sampler ``f(batch, T, generator, device, step) -> t`` drawing from p_k (Eq. 8).

    ``mu`` and ``sigma`` are fractions of T (``sigma=None``: the uniform std, √((T²−1)/12)/T);
    ``target`` is K_target in iterations (``None``: ``max(1, total_steps // 4)``).
    """

    def __init__(
        self,
        num_train_timesteps: int,
        total_steps: int,
        mu: float = 0.3,
        sigma: float | None = None,
        target: int | None = None,
    ) -> None:
        T = int(num_train_timesteps)
        if T < 2:
            raise ConfigError(f"CLTS num_train_timesteps={num_train_timesteps} must be >= 2")
        if not 0.0 <= mu <= 1.0:
            raise ConfigError(f"CLTS mu={mu} must be a fraction of T in [0, 1]")
        sigma = uniform_sigma_fraction(T) if sigma is None else sigma
        if not sigma > 0:
            raise ConfigError(f"CLTS sigma={sigma} must be a fraction of T > 0")
        target = max(1, int(total_steps) // 4) if target is None else target
        if target < 1:
            raise ConfigError(f"CLTS target={target} iterations must be >= 1")
        self.num_train_timesteps, self.total_steps = T, int(total_steps)
        self.mu, self.sigma, self.target = float(mu), float(sigma), int(target)
        self._gauss = gaussian_timestep_probs(T, self.mu * T, self.sigma * T)
        self._cache: dict[torch.device, torch.Tensor] = {}

    def __repr__(self) -> str:
        return (f"CLTSSampler(num_train_timesteps={self.num_train_timesteps}, mu={self.mu}, "
                f"sigma={self.sigma}, target={self.target})")

    def gaussian_probs(self) -> torch.Tensor:
        """p_G (float64, shape (T,)), a copy."""
        return self._gauss.clone()

    def lam(self, step: int) -> float:
        """λ_k for iteration ``step``."""
        return clts_lambda(step, self.target)

    def probs(self, step: int) -> torch.Tensor:
        """p_k(t) = (1 − λ_k)/T + λ_k·p_G(t) (float64, shape (T,))."""
        lam = self.lam(step)
        return (1.0 - lam) / self.num_train_timesteps + lam * self._gauss

    def _gauss_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._cache:
            self._cache[device] = self._gauss.to(device)
        return self._cache[device]

    def __call__(
        self, batch: int, T: int, generator: torch.Generator, device: torch.device | str, step: int
    ) -> torch.Tensor:
        """Draw ``batch`` timesteps from p_``step`` (per-example mixture), using only ``generator``."""
        if self.num_train_timesteps != T:
            raise ConfigError(f"CLTS sampler built for T={self.num_train_timesteps} was asked for T={T}")
        gdev = generator.device
        # Always draw all three streams so the generator advances identically at every step.
        u = torch.rand(batch, generator=generator, device=gdev, dtype=torch.float64)
        gauss = torch.multinomial(self._gauss_on(gdev), batch, replacement=True, generator=generator)
        unif = torch.randint(0, T, (batch,), generator=generator, device=gdev)
        t = torch.where(u < self.lam(step), gauss, unif)
        return t.to(device=device, dtype=torch.long)
