# Power-function EMA: Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models" (EDM2), Sec. 3.1 and App. C.2 (β_t = (1 − 1/t)^(γ+1), σ_rel(γ)).
"""``PowerEMA``: power-function EMAs of one model's floating-point state, the snapshots post-hoc EMA combines.

At (1-based) step t each average moves as θ̄_t = β_t θ̄_{t−1} + (1 − β_t) θ_t with β_t = (1 − 1/t)^(γ+1), so
θ̄_T = Σ_s w_s θ_s with w_s = (s^(γ+1) − (s−1)^(γ+1)) / T^(γ+1): the integral over (s−1, s] of the profile
p(τ) = (γ+1) τ^γ / T^(γ+1). The initial weights get no share (β_1 = 0). Its relative width is
σ_rel = √((γ+1) / ((γ+2)² (γ+3))).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from lcsc.errors import ConfigError
from lcsc.training.ema import ShadowWeights, lerp_towards

__all__ = ["PowerEMA", "SIGMA_REL_MAX", "gamma_to_sigma_rel", "phema_name", "sigma_rel_to_gamma"]

SIGMA_REL_MAX = 12.0**-0.5  # σ_rel of γ = 0 (a uniform average): 0.28868…


def gamma_to_sigma_rel(gamma: float) -> float:
    """Relative standard deviation of the power profile with exponent ``gamma`` (> −1)."""
    g = float(gamma)
    if not g > -1.0 or not math.isfinite(g):
        raise ConfigError(f"power EMA exponent γ = {gamma} must be a finite number > -1")
    return math.sqrt((g + 1.0) / ((g + 2.0) ** 2 * (g + 3.0)))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """Exponent γ ≥ 0 of the power profile with relative width ``sigma_rel`` in (0, 1/√12 ≈ 0.2887).

    σ² (γ+2)² (γ+3) = γ + 1 is the cubic σ²γ³ + 7σ²γ² + (16σ² − 1)γ + 12σ² − 1 = 0; γ is its largest real root
    (polished by Newton steps in float64).
    """
    s = float(sigma_rel)
    if not 0.0 < s < SIGMA_REL_MAX:
        raise ConfigError(f"sigma_rel {sigma_rel} must be in (0, {SIGMA_REL_MAX:.4f}) "
                          "(0.05–0.15 are typical; larger is a longer average)")
    s2 = s * s
    coeffs = [s2, 7.0 * s2, 16.0 * s2 - 1.0, 12.0 * s2 - 1.0]
    roots = np.roots(coeffs)
    gamma = float(max(r.real for r in roots if abs(r.imag) <= 1e-7 * max(1.0, abs(r))))
    for _ in range(3):
        f = np.polyval(coeffs, gamma)
        df = np.polyval(np.polyder(coeffs), gamma)
        if df == 0:
            break
        gamma -= float(f / df)
    return float(max(gamma, 0.0))


def phema_name(sigma_rel: float) -> str:
    """Folder name of a power EMA: ``sigma-0.050``."""
    return f"sigma-{float(sigma_rel):.3f}"


class PowerEMA(ShadowWeights):
    """Power-function EMAs of every floating-point tensor of ``model.state_dict()``, one per σ_rel.

    :meth:`update` needs the 1-based step (β depends on it). Non-float entries (counters) are copied from the
    model when a state dict is requested.
    """

    kind = "power EMA"

    def __init__(self, model: nn.Module, sigma_rels=()) -> None:
        self.sigma_rels: dict[str, float] = {}
        self.gammas: dict[str, float] = {}
        for s in sigma_rels:
            name = phema_name(float(s))
            if name in self.sigma_rels:
                raise ConfigError(f"power EMA sigma_rels {list(sigma_rels)}: two of them are both {name}")
            self.gammas[name] = sigma_rel_to_gamma(float(s))
            self.sigma_rels[name] = float(s)
        super().__init__(model, self.sigma_rels)

    @property
    def names(self) -> list[str]:
        return list(self.sigma_rels)

    @staticmethod
    def beta(step: int, gamma: float) -> float:
        """β_t = (1 − 1/t)^(γ+1): the share the average keeps at 1-based step ``step``."""
        return (1.0 - 1.0 / step) ** (gamma + 1.0)

    @torch.no_grad()
    def update(self, step: int) -> None:
        """One step of every average towards the model's current weights (``step`` is 1-based)."""
        if int(step) < 1:
            raise ConfigError(f"power EMA step {step} must be >= 1 (steps count from 1)")
        if not self.sigma_rels:
            return
        live = self._live()
        for name, gamma in self.gammas.items():
            lerp_towards(self.shadows[name], live, self.beta(int(step), gamma))
