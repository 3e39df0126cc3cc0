# Online EMA of weights (Polyak averaging; half-life parameterisation as in Karras et al. 2024 "EDM2", Sec. 3).
"""``MultiEMA``: several exponential moving averages of one model's floating-point state, updated together."""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from lcsc.errors import ConfigError
from lcsc.rates import half_life_to_rate

__all__ = ["ShadowWeights", "MultiEMA", "half_life_to_rate", "ema_name", "lerp_towards"]


# One update function per decay (an online EMA's decay never changes; a power EMA's changes every step).
_ema_update = functools.lru_cache(maxsize=64)(get_ema_multi_avg_fn)


def lerp_towards(averages: list[torch.Tensor], live: list[torch.Tensor], decay: float) -> None:
    """In place and without autograd, every ``a ← decay·a + (1 − decay)·x`` (as ``torch.lerp``), through torch's
    public fused multi-tensor EMA update (:func:`torch.optim.swa_utils.get_ema_multi_avg_fn`): bit-identical to a
    per-tensor ``lerp_`` loop, at the speed of one fused call."""
    if averages:
        _ema_update(float(decay))(averages, live, None)


def ema_name(half_life: float | None = None, rate: float | None = None) -> str:
    """Folder name of an EMA: ``hl-500`` for a half-life, ``rate-0.9999`` for a rate."""
    if half_life is not None:
        return f"hl-{half_life:g}"
    return f"rate-{rate:g}"


class ShadowWeights:
    """Shadow copies ("averages") of every floating-point tensor of ``model.state_dict()``, one list per name; the
    subclasses say how they move. Non-float entries (counters) are copied from the model when a state dict is
    requested."""

    kind = "EMA"

    def __init__(self, model: nn.Module, names) -> None:
        self.model = model
        self.keys = [k for k, v in model.state_dict().items() if v.is_floating_point()]
        self.shadows = {name: [v.detach().clone() for v in self._live()] for name in names}

    def _live(self) -> list[torch.Tensor]:
        sd = self.model.state_dict()
        live = [sd[k].detach() for k in self.keys]
        if live and getattr(self, "shadows", None):
            self._follow(live[0].device)
        return live

    def _follow(self, device: torch.device) -> None:
        """Move the averages to ``device`` when the model moved after they were made (e.g. a recorder built before
        ``model.to("cuda")``): the updates' fused lerp needs both on one device."""
        first = next(iter(self.shadows.values()))
        if first and first[0].device != device:
            self.shadows = {n: [t.to(device) for t in ts] for n, ts in self.shadows.items()}

    def __len__(self) -> int:
        return len(self.shadows)

    def state_dict_for(self, name: str) -> dict[str, torch.Tensor]:
        """A full model state dict holding average ``name``'s weights."""
        sd = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        sd.update(zip(self.keys, self.shadows[name]))
        return sd

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensors for a training-state file: ``<name>/<key>``."""
        return {f"{n}/{k}": t for n, ts in self.shadows.items() for k, t in zip(self.keys, ts)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = [f"{n}/{k}" for n in self.shadows for k in self.keys if f"{n}/{k}" not in state]
        if missing:
            raise ConfigError(f"{self.kind} state lacks {len(missing)} tensors (first: {missing[0]})")
        for name, shadows in self.shadows.items():
            for k, t in zip(self.keys, shadows):
                t.copy_(state[f"{name}/{k}"])


class MultiEMA(ShadowWeights):
    """EMAs θ̄ ← γθ̄ + (1−γ)θ of every floating-point tensor of ``model.state_dict()``, one per rate."""

    def __init__(self, model: nn.Module, half_lives=(), rates=()) -> None:
        self.rates: dict[str, float] = {}
        for h in half_lives:
            self.rates[ema_name(half_life=float(h))] = half_life_to_rate(float(h))
        for r in rates:
            if not 0.0 <= float(r) < 1.0:
                raise ConfigError(f"EMA rate {r} must be in [0, 1)")
            self.rates[ema_name(rate=float(r))] = float(r)
        super().__init__(model, self.rates)

    @torch.no_grad()
    def update(self) -> None:
        """One EMA step of every average towards the model's current weights."""
        if not self.rates:
            return
        live = self._live()
        for name, rate in self.rates.items():
            lerp_towards(self.shadows[name], live, rate)
