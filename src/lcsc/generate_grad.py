# Differentiable sampling for gradient LCSC: θ(a) = Σₖ aₖθₖ is linear in a, so ∂loss/∂a = S·∂loss/∂θ (ARCHITECTURE).
"""Images as a differentiable function of the weights: the unchanged DM solvers (DDIM, DPM-Solver++) and the CM
sampler run with autograd on, the network called with a given state dict (``torch.func.functional_call``), and each
network evaluation checkpointed (``torch.utils.checkpoint``), so the backward pass recomputes a step's activations
instead of storing them: memory grows with NFE by one image batch per step, not by the network's activations.

The no-grad paths (:func:`lcsc.generate.generate`) call the same solver loops under ``torch.no_grad`` and are
unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint as _checkpoint

from lcsc.consistency.sampling import integrate_cm
from lcsc.diffusion.sampling import DM_SOLVERS, integrate_dm
from lcsc.errors import ConfigError
from lcsc.generate import SamplingInputs
from lcsc.precision import with_autocast

__all__ = ["WithWeights", "generate_differentiable", "checkpointed_call"]


class WithWeights(nn.Module):
    """``model`` evaluated with the tensors of ``state`` (which may require grad) in place of its own weights.

    Attributes (``config``, ``schedule``, …) come from the wrapped model, so every sampler takes it in its place."""

    def __init__(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.base = model
        self.state = state

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["base"], name)

    def forward(self, x: torch.Tensor, level, labels: torch.Tensor | None = None) -> torch.Tensor:
        return functional_call(self.base, self.state, (x, level, labels))


def checkpointed_call(model: nn.Module, x: torch.Tensor, level: torch.Tensor, labels) -> torch.Tensor:
    """``model(x, level, labels)`` whose activations are recomputed in the backward pass (non-reentrant)."""
    return _checkpoint(model, x, level, labels, use_reentrant=False)


def generate_differentiable(model: nn.Module, state: dict[str, torch.Tensor], inputs: SamplingInputs, *,
                            nfe: int, solver: str = "dpm-solver", device: str | torch.device | None = None,
                            checkpoint: bool = True, autocast: str | None = None) -> torch.Tensor:
    """Samples of ``model`` with weights ``state`` from ``inputs`` (all of them, one batch), float32 in [−1, 1] on
    ``device``, differentiable in every tensor of ``state`` that requires grad. With autograd off the values equal
    :func:`lcsc.generate.generate`'s on the same inputs (the same solver loop)."""
    kind = model.config.kind
    if kind == "dm" and solver not in DM_SOLVERS:
        raise ConfigError(f"DM solver {solver!r} must be one of {DM_SOLVERS}")
    if nfe < 1:
        raise ConfigError(f"NFE {nfe} must be >= 1")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    net = with_autocast(WithWeights(model, state), autocast)
    call = checkpointed_call if checkpoint else None
    noise, labels, step = inputs.batch(0, len(inputs), device)
    try:
        if kind == "dm":
            x = integrate_dm(net, noise, labels, nfe, solver, call=call)
        else:
            x = integrate_cm(net, noise, None, labels, nfe, step, call=call)
    finally:
        model.train(was_training)
    return x.float().clamp(-1, 1)
