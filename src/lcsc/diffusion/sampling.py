# DDIM (Song et al. 2021, Eq. 12, η = 0) and DPM-Solver++(2M) (Lu et al. 2022) sampling via diffusers schedulers.
"""Sample an ε-prediction DM at a chosen NFE; all noise comes from the caller's seeded CPU generator."""

from __future__ import annotations

import torch
from torch import nn

from lcsc.diffusion.schedule import NoiseSchedule

__all__ = ["DM_SOLVERS", "make_scheduler", "sample_dm", "integrate_dm"]

DM_SOLVERS = ("ddim", "dpm-solver")


def make_scheduler(schedule: NoiseSchedule, solver: str, nfe: int):
    """A diffusers scheduler for ``solver`` set to ``nfe`` steps (one network evaluation each, trailing spacing)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if nfe < 1:
        raise ValueError(f"NFE {nfe} must be >= 1")
    common = {**schedule.diffusers_config(), "timestep_spacing": "trailing"}
    if solver == "ddim":
        sched = DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
    elif solver == "dpm-solver":
        sched = DPMSolverMultistepScheduler(
            **common, algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True, final_sigmas_type="zero"
        )
    else:
        raise ValueError(f"DM solver {solver!r} must be one of {DM_SOLVERS}")
    sched.set_timesteps(nfe)
    return sched


def integrate_dm(model: nn.Module, noise: torch.Tensor, labels: torch.Tensor | None = None, nfe: int = 20,
                 solver: str = "ddim", call=None) -> torch.Tensor:
    """The solver loop of :func:`sample_dm` without ``no_grad``: with autograd on it is differentiable in the model's
    weights. ``call(model, x, t, labels)`` evaluates the network (default: ``model(x, t, labels)``; the gradient
    search passes a checkpointed call so activations are recomputed in the backward pass, not stored per step)."""
    sched = make_scheduler(model.schedule, solver, nfe)
    x = noise * sched.init_noise_sigma
    for t in sched.timesteps:
        t_batch = torch.full((x.shape[0],), float(t), device=x.device)
        x_in = sched.scale_model_input(x, t)
        eps = model(x_in, t_batch, labels) if call is None else call(model, x_in, t_batch, labels)
        x = sched.step(eps, t, x).prev_sample
    return x


@torch.no_grad()
def sample_dm(
    model: nn.Module,
    noise: torch.Tensor,
    labels: torch.Tensor | None = None,
    nfe: int = 20,
    solver: str = "ddim",
) -> torch.Tensor:
    """Integrate from ``noise`` (x_T, already on the model's device) to x₀ with ``nfe`` model calls."""
    return integrate_dm(model, noise, labels, nfe, solver)
