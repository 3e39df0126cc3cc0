# Min-SNR-γ loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy", Eq. 7 for ε-prediction).
"""Per-example weight min(SNR(t), γ)/SNR(t) on the ε-MSE, with SNR(t) = ᾱ_t/(1 − ᾱ_t)."""

from __future__ import annotations

import torch

from lcsc.errors import ConfigError

__all__ = ["MinSNRWeighting"]


class MinSNRWeighting:
    """Loss weighting ``f(t, alphas_cumprod) -> w`` for ε-prediction: w = min(SNR, γ)/SNR = min(1, γ/SNR)."""

    def __init__(self, gamma: float = 5.0) -> None:
        if not gamma > 0:
            raise ConfigError(f"Min-SNR gamma={gamma} must be > 0")
        self.gamma = float(gamma)

    def __repr__(self) -> str:
        return f"MinSNRWeighting(gamma={self.gamma})"

    def __call__(self, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
        """float32 weights shaped like ``t``, on ``t``'s device."""
        ac = alphas_cumprod.to(device=t.device, dtype=torch.float64)[t.long()]
        # min(SNR, γ)/SNR written as min(1, γ(1 − ᾱ)/ᾱ): finite at ᾱ = 1 (weight 0) and ᾱ = 0 (weight 1).
        w = torch.clamp(self.gamma * (1.0 - ac) / ac, max=1.0)
        return w.to(torch.float32)
