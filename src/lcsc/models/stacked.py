"""``StackedModel``: B weight sets of one architecture evaluated as one batched call (torch.func.vmap)."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, vmap

__all__ = ["StackedModel"]


class StackedModel(nn.Module):
    """Called like the wrapped model on a batch of B·n inputs: rows [b·n, (b+1)·n) use weight set b.

    Samplers see the same ``config`` / ``schedule`` attributes as on the wrapped model, so any sampler that treats
    batch rows independently (DDIM, DPM-Solver, CM sampling) samples B models at once.
    """

    def __init__(self, model: nn.Module, states: list[dict[str, torch.Tensor]], device: torch.device) -> None:
        super().__init__()
        self.base = model.eval()
        self.B = len(states)
        names = dict(model.named_parameters()) | dict(model.named_buffers())
        self.params = {k: torch.stack([s[k] for s in states]).to(device, names[k].dtype) for k in names}

        def one(params, x, level, labels):
            return functional_call(self.base, params, (x, level, labels))

        self._call = vmap(one, in_dims=(0, 0, 0, 0))
        self._call_nolabel = vmap(lambda p, x, level: one(p, x, level, None), in_dims=(0, 0, 0))

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["base"], name)

    def forward(self, x: torch.Tensor, level: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        B = self.B
        xs = x.reshape(B, x.shape[0] // B, *x.shape[1:])
        lv = torch.as_tensor(level, dtype=torch.float32, device=x.device)
        lv = (lv.expand(x.shape[0]) if lv.ndim == 0 else lv).reshape(B, -1)
        if labels is None:
            out = self._call_nolabel(self.params, xs, lv)
        else:
            out = self._call(self.params, xs, lv, labels.reshape(B, -1))
        return out.reshape(x.shape[0], *out.shape[2:])
