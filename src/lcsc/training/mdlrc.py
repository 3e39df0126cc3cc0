# MDLRC: momentum decay (Demon, Chen & Kyrillidis 2019, Eq. 9 of the faster-dm-training paper) with learning-rate compensation (Eq. 10; reconstructed floor β_min).
"""Adam β₁ decayed by Demon, β_t = β_init(1−τ)/((1−β_init) + β_init(1−τ)), τ = clamp(t/T_decay, 0, 1),
floored at β_min; lr_t = lr₀(1 − β_init)/(1 − β_t) keeps lr_t(1 − β_t) constant (until the floor)."""

from __future__ import annotations

from typing import Any

import torch

from lcsc.errors import ConfigError

__all__ = ["MomentumDecaySchedule"]

_SETTINGS = ("lr", "warmup", "beta1", "beta_min", "decay_steps", "compensate")


class MomentumDecaySchedule:
    """Optimiser schedule: ``apply(optimizer, step)`` sets each group's lr and β₁ for 1-based ``step``.

    ``beta1`` is β_init; ``decay_steps`` (T_decay) defaults to ``total_steps``; ``compensate=False`` keeps lr₀
    (plain momentum decay). ``warmup`` > 0 multiplies lr by min(1, step/warmup).
    """

    def __init__(
        self,
        lr: float,
        warmup: int = 0,
        total_steps: int = 1,
        beta1: float = 0.9,
        beta_min: float = 0.5,
        decay_steps: int | None = None,
        compensate: bool = True,
        **_: Any,
    ) -> None:
        decay_steps = total_steps if decay_steps is None else decay_steps
        if not lr > 0:
            raise ConfigError(f"MDLRC lr={lr} must be > 0")
        if warmup < 0:
            raise ConfigError(f"MDLRC warmup={warmup} must be >= 0")
        if not 0.0 <= beta_min <= beta1 < 1.0:
            raise ConfigError(f"MDLRC needs 0 <= beta_min ({beta_min}) <= beta1 ({beta1}) < 1")
        if decay_steps < 1:
            raise ConfigError(f"MDLRC decay_steps={decay_steps} must be >= 1")
        self.lr, self.warmup, self.total_steps = float(lr), int(warmup), int(total_steps)
        self.beta1, self.beta_min = float(beta1), float(beta_min)
        self.decay_steps, self.compensate = int(decay_steps), bool(compensate)
        self.last_step = 0

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)}" for k in _SETTINGS)
        return f"MomentumDecaySchedule({inner})"

    def beta_at(self, step: int) -> float:
        """Demon β₁ at iteration ``step`` (Eq. 9), floored at β_min."""
        tau = min(max(step / self.decay_steps, 0.0), 1.0)
        b0 = self.beta1
        beta = b0 * (1.0 - tau) / ((1.0 - b0) + b0 * (1.0 - tau))
        return max(beta, self.beta_min)

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step``: lr₀(1 − β_init)/(1 − β_t) with compensation (Eq. 10), else lr₀; × warm-up."""
        lr = self.lr * (1.0 - self.beta1) / (1.0 - self.beta_at(step)) if self.compensate else self.lr
        if self.warmup > 0:
            lr *= min(1.0, step / self.warmup)
        return lr

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> dict[str, float]:
        """Set lr and β₁ of every param group for optimizer step ``step`` (1-based); returns them for the log."""
        lr, beta = self.lr_at(step), self.beta_at(step)
        for i, group in enumerate(optimizer.param_groups):
            if "betas" not in group:
                raise ConfigError(
                    f"MDLRC needs an Adam-style optimizer with 'betas'; param group {i} of "
                    f"{type(optimizer).__name__} has none"
                )
            group["lr"] = lr
            group["betas"] = (beta, group["betas"][1])
        self.last_step = int(step)
        return {"lr": lr, "beta1": beta}

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings and the last step applied."""
        return {**{k: getattr(self, k) for k in _SETTINGS}, "last_step": self.last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``last_step``; the stored settings must equal this schedule's (else :class:`ConfigError`)."""
        diff = [k for k in _SETTINGS if state.get(k) != getattr(self, k)]
        if diff:
            details = ", ".join(f"{k}: saved {state.get(k)!r} != now {getattr(self, k)!r}" for k in diff)
            raise ConfigError(f"MDLRC schedule settings differ from the saved state ({details})")
        self.last_step = int(state.get("last_step", 0))
