# Consistency training / distillation losses (Song et al. 2023, Eqs. 7 and 10; improved CT: Song & Dhariwal 2023).
"""CT: θ⁻ = θ (stop-grad), pseudo-Huber, lognormal levels on the curriculum grid. CD: one Heun/Euler teacher step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lcsc.consistency.karras import (
    default_huber_c,
    ict_num_scales,
    karras_sigmas,
    lognormal_index_probs,
    pseudo_huber,
)

__all__ = ["ConsistencyTrainingLoss", "ConsistencyDistillationLoss"]


def _distance(pred: torch.Tensor, target: torch.Tensor, huber_c: float | None) -> torch.Tensor:
    c = default_huber_c(pred[0].numel()) if huber_c is None else huber_c
    if c == 0:
        return (pred - target).float().pow(2).flatten(1).mean(1)
    return pseudo_huber(pred, target, c)


@dataclass
class ConsistencyTrainingLoss:
    """Improved consistency training: N(k) levels, i ~ lognormal, λ(σ_i) = 1/(σ_{i+1} − σ_i)."""

    total_steps: int
    s0: int = 10
    s1: int = 1280
    p_mean: float = -1.1
    p_std: float = 2.0
    huber_c: float | None = None

    def __call__(
        self,
        model: nn.Module,
        x0: torch.Tensor,
        labels: torch.Tensor | None,
        generator: torch.Generator,
        step: int,
        target_model: nn.Module | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        c = model.config
        n = ict_num_scales(step, self.total_steps, self.s0, self.s1)
        sigmas = karras_sigmas(n, c.sigma_min, c.sigma_max, c.rho).to(x0.device)
        probs = lognormal_index_probs(sigmas, self.p_mean, self.p_std)
        i = torch.multinomial(probs.float(), x0.shape[0], replacement=True, generator=generator)
        s_lo, s_hi = sigmas[i].float(), sigmas[i + 1].float()
        z = torch.randn(x0.shape, generator=generator, device=x0.device)
        pred = model(x0 + s_hi.view(-1, 1, 1, 1) * z, s_hi, labels)
        with torch.no_grad():
            target = (target_model or model)(x0 + s_lo.view(-1, 1, 1, 1) * z, s_lo, labels)
        weight = 1.0 / (s_hi - s_lo)
        loss = (weight * _distance(pred, target, self.huber_c)).mean()
        return loss, {"num_scales": float(n)}


@dataclass
class ConsistencyDistillationLoss:
    """Consistency distillation from an EDM denoiser ``teacher(x, σ, labels)`` over a fixed N-level grid."""

    teacher: nn.Module
    num_scales: int = 18
    solver: str = "heun"
    huber_c: float | None = None

    def teacher_step(self, x: torch.Tensor, s_hi: torch.Tensor, s_lo: torch.Tensor, labels) -> torch.Tensor:
        """One Euler or Heun step of the PF-ODE dx/dσ = (x − D(x, σ))/σ from σ_{n+1} to σ_n."""
        hi, lo = s_hi.view(-1, 1, 1, 1), s_lo.view(-1, 1, 1, 1)
        d = (x - self.teacher(x, s_hi, labels)) / hi
        x_next = x + (lo - hi) * d
        if self.solver == "euler":
            return x_next
        d_next = (x_next - self.teacher(x_next, s_lo, labels)) / lo
        return x + (lo - hi) * (d + d_next) / 2

    def __call__(
        self,
        model: nn.Module,
        x0: torch.Tensor,
        labels: torch.Tensor | None,
        generator: torch.Generator,
        step: int,
        target_model: nn.Module | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        c = model.config
        sigmas = karras_sigmas(self.num_scales, c.sigma_min, c.sigma_max, c.rho).to(x0.device).float()
        i = torch.randint(0, self.num_scales - 1, (x0.shape[0],), generator=generator, device=x0.device)
        s_lo, s_hi = sigmas[i], sigmas[i + 1]
        z = torch.randn(x0.shape, generator=generator, device=x0.device)
        x_hi = x0 + s_hi.view(-1, 1, 1, 1) * z
        pred = model(x_hi, s_hi, labels)
        with torch.no_grad():
            x_lo = self.teacher_step(x_hi, s_hi, s_lo, labels)
            target = (target_model or model)(x_lo, s_lo, labels)
        loss = _distance(pred, target, self.huber_c).mean()
        return loss, {"num_scales": float(self.num_scales)}
