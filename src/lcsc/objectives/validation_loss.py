"""Validation-loss objective: mean loss of any model on user-given data (lower is better)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from lcsc.errors import ConfigError

__all__ = ["ValidationLossObjective"]


class ValidationLossObjective:
    """Score = example-weighted mean of ``loss_fn(model(inputs), targets)`` over ``data``.

    ``data`` is ``(inputs, targets)`` tensors (split into ``batch_size`` chunks) or an iterable of such batches.
    The objective owns ``model`` and loads each merged state dict into it.
    """

    direction = "minimize"

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: tuple[torch.Tensor, torch.Tensor] | Iterable,
        *,
        batch_size: int = 1024,
        device: str | torch.device = "cpu",
        name: str = "validation_loss",
    ):
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: must be >= 1")
        self.model, self.loss_fn, self.data = model.to(device).eval(), loss_fn, data
        self.batch_size, self.device, self.name = batch_size, torch.device(device), name

    def _batches(self):
        if isinstance(self.data, tuple) and len(self.data) == 2 and isinstance(self.data[0], torch.Tensor):
            x, y = self.data
            if len(x) != len(y) or len(x) == 0:
                raise ConfigError(
                    f"validation data: {len(x)} inputs and {len(y)} targets (must be equal and > 0)"
                )
            for i in range(0, len(x), self.batch_size):
                yield x[i : i + self.batch_size], y[i : i + self.batch_size]
        else:
            yield from self.data

    @torch.no_grad()
    def score(self, state_dict: dict[str, torch.Tensor]) -> float:
        self.model.load_state_dict(state_dict)
        total, count = 0.0, 0
        for x, y in self._batches():
            x, y = x.to(self.device), y.to(self.device)
            loss = self.loss_fn(self.model(x), y)
            total += float(loss) * len(x)
            count += len(x)
        if count == 0:
            raise ConfigError("validation data is empty")
        return total / count
