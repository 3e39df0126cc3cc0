# An ε-prediction DDPM as an EDM denoiser (Karras et al. 2022, Table 1 "VP" column; Song et al. 2023, Sec. 4 for CD).
"""``EDMTeacher``: D(x, σ) = x − σ·ε̂(x/√(1+σ²), t(σ)) with t(σ) interpolated in log σ over the DDPM table."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["EDMTeacher"]


class EDMTeacher(nn.Module):
    """Wrap a model ``eps(x_vp, t, labels)`` with ``config.num_train_timesteps``/``beta_schedule`` as D(x, σ)."""

    def __init__(self, eps_model: nn.Module) -> None:
        super().__init__()
        self.eps_model = eps_model.eval().requires_grad_(False)
        sigmas = eps_model.schedule.sigmas().float()
        self.register_buffer("log_sigmas", sigmas.log(), persistent=False)
        self.sigma_min = float(sigmas[0])
        self.sigma_max = float(sigmas[-1])

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional DDPM step t(σ) by linear interpolation of t against log σ_t (clamped to [0, T−1])."""
        log_sigma = sigma.float().log().clamp(self.log_sigmas[0], self.log_sigmas[-1])
        idx = torch.searchsorted(self.log_sigmas, log_sigma).clamp(1, len(self.log_sigmas) - 1)
        lo, hi = self.log_sigmas[idx - 1], self.log_sigmas[idx]
        frac = ((log_sigma - lo) / (hi - lo)).clamp(0, 1)
        return (idx - 1).float() + frac

    @torch.no_grad()
    def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        s = sigma.view(-1, 1, 1, 1)
        eps = self.eps_model(x / (1 + s**2).sqrt(), self.timestep(sigma), labels)
        return x - s * eps
