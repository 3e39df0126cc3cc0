"""Mixed precision for sampling: the network's calls under ``torch.autocast`` (bf16), the solver in float32.

Only the model call is autocast: samplers keep x, σ/t and the solver's arithmetic in float32, and the model's
output is cast back to float32 before the solver sees it (:class:`AutocastModel`). ``"off"`` (the default) changes
nothing. bf16 autocast runs on CUDA and on CPU (``benchmarks/mixed_precision.py`` measures its FD cost).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from lcsc.errors import ConfigError

__all__ = ["AUTOCAST_MODES", "check_autocast", "autocast_context", "AutocastModel", "with_autocast"]

AUTOCAST_MODES = ("off", "bf16")
_DTYPES = {"bf16": torch.bfloat16}


def check_autocast(mode: str | None) -> str:
    """``mode`` normalised (None → "off"); a :class:`ConfigError` naming the choices otherwise."""
    mode = "off" if mode is None else str(mode).strip().lower()
    if mode not in AUTOCAST_MODES:
        raise ConfigError(f"--autocast {mode!r}: choose one of {', '.join(AUTOCAST_MODES)}")
    return mode


def autocast_context(device: str | torch.device, mode: str | None):
    """``torch.autocast`` for ``device``'s type in ``mode`` ("bf16"), or a no-op context for "off"."""
    mode = check_autocast(mode)
    if mode == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[mode])


class AutocastModel(nn.Module):
    """``model`` called under autocast, its output returned as float32; ``config``, ``schedule`` and any other
    attribute come from the wrapped model, so every sampler takes it in the model's place."""

    def __init__(self, model: nn.Module, mode: str) -> None:
        super().__init__()
        self.inner = model
        self.mode = check_autocast(mode)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["inner"], name)

    def forward(self, x: torch.Tensor, level, labels: torch.Tensor | None = None) -> torch.Tensor:
        with autocast_context(x.device, self.mode):
            out = self.inner(x, level, labels)
        return out.float()


def with_autocast(model: nn.Module, mode: str | None) -> nn.Module:
    """``model`` itself for "off", else an :class:`AutocastModel` around it."""
    mode = check_autocast(mode)
    return model if mode == "off" else AutocastModel(model, mode)
