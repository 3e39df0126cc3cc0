"""``generate``: images from any lcsc DM or CM at a chosen NFE, with every random draw from one CPU generator."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from lcsc.consistency.sampling import sample_cm
from lcsc.diffusion.sampling import DM_SOLVERS, sample_dm
from lcsc.errors import ConfigError

__all__ = ["generate", "default_nfe", "SOLVERS"]

SOLVERS = (*DM_SOLVERS, "consistency")


def default_nfe(model: nn.Module) -> int:
    """20 for a DM, 1 for a CM."""
    return 20 if model.config.kind == "dm" else 1


def generate(
    model: nn.Module,
    n: int,
    generator: torch.Generator | int,
    *,
    nfe: int | None = None,
    solver: str = "dpm-solver",
    labels: torch.Tensor | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """``n`` samples (CPU float32 in [−1, 1]). Noise and labels are drawn on the CPU generator, then moved, so
    the same seed gives the same noise on CPU and GPU. CMs ignore ``solver`` (multistep consistency sampling)."""
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    c = model.config
    nfe = nfe or default_nfe(model)
    if c.kind == "dm" and solver not in DM_SOLVERS:
        raise ConfigError(f"DM solver {solver!r} must be one of {DM_SOLVERS}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if labels is None and c.num_classes > 0:
        labels = torch.randint(0, c.num_classes, (n,), generator=generator)
    was_training = model.training
    model.eval()
    out = []
    for start in tqdm(range(0, n, batch_size), desc="sampling", disable=not progress, leave=False):
        b = min(batch_size, n - start)
        noise = torch.randn((b, c.in_channels, c.resolution, c.resolution), generator=generator).to(device)
        lab = labels[start : start + b].to(device) if labels is not None else None
        if c.kind == "dm":
            x = sample_dm(model, noise, lab, nfe=nfe, solver=solver)
        else:
            x = sample_cm(model, noise, generator, lab, nfe=nfe)
        out.append(x.float().clamp(-1, 1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, c.in_channels, c.resolution, c.resolution)
