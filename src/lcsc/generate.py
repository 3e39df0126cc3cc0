"""``generate``: images from any lcsc DM or CM at a chosen NFE, with every random draw from one CPU generator.

All randomness of a sampling run is drawn first as :class:`SamplingInputs` (labels, initial noise in batches, and a
CM's re-noising draws), so the first n samples of a run on N inputs are exactly a run on ``inputs.prefix(n)``
(racing on sample count uses this), and several models can be sampled on the same inputs (:func:`generate_many`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from lcsc.consistency.sampling import sample_cm
from lcsc.diffusion.sampling import DM_SOLVERS, sample_dm
from lcsc.errors import ConfigError
from lcsc.precision import with_autocast
from lcsc.protocol import check_noise

__all__ = ["SamplingInputs", "draw_inputs", "generate", "generate_many", "default_nfe", "SOLVERS"]

SOLVERS = (*DM_SOLVERS, "consistency")


@dataclass(frozen=True)
class SamplingInputs:
    """Everything random about sampling n images: x_T noise (n, C, H, W), labels (n,) or None, and for a multistep
    CM the re-noising draws (nfe − 1, n, C, H, W) or None. All on the CPU."""

    noise: torch.Tensor
    labels: torch.Tensor | None = None
    step_noise: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.noise)

    def prefix(self, n: int) -> SamplingInputs:
        """The first ``n`` samples' inputs (exactly what they were in the full draw)."""
        if not 0 < n <= len(self):
            raise ConfigError(f"cannot take {n} of {len(self)} drawn sampling inputs")
        step = self.step_noise[:, :n] if self.step_noise is not None else None
        return SamplingInputs(self.noise[:n], None if self.labels is None else self.labels[:n], step)

    def batch(self, start: int, stop: int, device: torch.device):
        lab = self.labels[start:stop].to(device) if self.labels is not None else None
        step = self.step_noise[:, start:stop] if self.step_noise is not None else None
        return self.noise[start:stop].to(device), lab, step


def default_nfe(model: nn.Module) -> int:
    """20 for a DM, 1 for a CM."""
    return 20 if model.config.kind == "dm" else 1


def draw_inputs(config, n: int, generator: torch.Generator | int, *, nfe: int = 1, batch_size: int = 256,
                labels: torch.Tensor | None = None) -> SamplingInputs:
    """Draw a sampling run's randomness: labels (class-conditional models), then x_T noise batch by batch, then the
    CM re-noising draws. Same seed, same inputs, on any device."""
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    check_noise(generator.initial_seed())
    shape = (config.in_channels, config.resolution, config.resolution)
    if labels is None and config.num_classes > 0:
        labels = torch.randint(0, config.num_classes, (n,), generator=generator)
    chunks = [torch.randn((min(batch_size, n - s), *shape), generator=generator) for s in range(0, n, batch_size)]
    noise = torch.cat(chunks) if chunks else torch.empty(0, *shape)
    step = None
    if config.kind == "cm" and nfe > 1:
        step = torch.randn((nfe - 1, n, *shape), generator=generator)
    return SamplingInputs(noise, labels, step)


def _sample(model: nn.Module, noise, labels, step, nfe: int, solver: str) -> torch.Tensor:
    if model.config.kind == "dm":
        return sample_dm(model, noise, labels, nfe=nfe, solver=solver)
    return sample_cm(model, noise, None, labels, nfe=nfe, step_noise=step)


def _check(model: nn.Module, nfe: int, solver: str) -> None:
    if model.config.kind == "dm" and solver not in DM_SOLVERS:
        raise ConfigError(f"DM solver {solver!r} must be one of {DM_SOLVERS}")
    if nfe < 1:
        raise ConfigError(f"NFE {nfe} must be >= 1")


@torch.no_grad()
def generate(model: nn.Module, n: int, generator: torch.Generator | int, *, nfe: int | None = None,
             solver: str = "dpm-solver", labels: torch.Tensor | None = None, batch_size: int = 256,
             device: str | torch.device | None = None, progress: bool = False,
             inputs: SamplingInputs | None = None, autocast: str | None = None) -> torch.Tensor:
    """``n`` samples (CPU float32 in [−1, 1]). Randomness comes from ``inputs`` or is drawn from ``generator``
    on the CPU first, so the same seed gives the same images on CPU and GPU. CMs ignore ``solver``.
    ``autocast="bf16"`` runs the network's calls under bf16 autocast (:mod:`lcsc.precision`; default off)."""
    nfe = default_nfe(model) if nfe is None else nfe  # (0 is refused, not taken as the default)
    _check(model, nfe, solver)
    if inputs is None:
        inputs = draw_inputs(model.config, n, generator, nfe=nfe, batch_size=batch_size, labels=labels)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    net, out = with_autocast(model, autocast), []
    for start in tqdm(range(0, len(inputs), batch_size), desc="sampling", disable=not progress, leave=False):
        noise, lab, step = inputs.batch(start, start + batch_size, device)
        out.append(_sample(net, noise, lab, step, nfe, solver).float().clamp(-1, 1).cpu())
    model.train(was_training)
    c = model.config
    return torch.cat(out) if out else torch.empty(0, c.in_channels, c.resolution, c.resolution)


@torch.no_grad()
def generate_many(model: nn.Module, states: list[dict[str, torch.Tensor]], inputs: SamplingInputs, *,
                  nfe: int | None = None, solver: str = "dpm-solver", batch_size: int = 256,
                  device: str | torch.device | None = None, autocast: str | None = None) -> list[torch.Tensor]:
    """Samples of several weight sets of one architecture on the same ``inputs``, as one batched computation
    (``torch.func.vmap`` over the stacked parameters). Equals :func:`generate` per state up to float rounding.
    ``batch_size`` counts the rows of one vmapped call, all states together (``batch_size // B`` inputs each)."""
    from lcsc.models.stacked import StackedModel

    nfe = default_nfe(model) if nfe is None else nfe  # (0 is refused, not taken as the default)
    _check(model, nfe, solver)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    stacked = with_autocast(StackedModel(model, states, device), autocast)
    B, out = len(states), [[] for _ in states]
    per = max(1, batch_size // B)  # ``batch_size`` rows per vmapped call on every device (B× that overflowed GPUs)
    for start in range(0, len(inputs), per):
        noise, lab, step = inputs.batch(start, start + per, device)
        steps = None if step is None else step.repeat(1, B, 1, 1, 1)
        x = _sample(stacked, _tile(noise, B), _tile(lab, B), steps, nfe, solver).float().clamp(-1, 1).cpu()
        for b, chunk in enumerate(x.chunk(B)):
            out[b].append(chunk)
    return [torch.cat(o) for o in out]


def _tile(t: torch.Tensor | None, copies: int) -> torch.Tensor | None:
    """``copies`` copies of ``t`` along the batch dimension (None stays None)."""
    return None if t is None else t.repeat(copies, *([1] * (t.dim() - 1)))
