# DDIM (Song et al. 2021, Eq. 12, η = 0) and DPM-Solver++(2M) (Lu et al. 2022) sampling via diffusers schedulers.
"""Sample an ε-prediction DM at a chosen NFE; all noise comes from the caller's seeded CPU generator."""

from __future__ import annotations

import torch
from torch import nn

from lcsc.diffusion.schedule import NoiseSchedule

__all__ = ["DM_SOLVERS", "make_scheduler", "sample_dm"]

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


@torch.no_grad()
def sample_dm(
    model: nn.Module,
    noise: torch.Tensor,
    labels: torch.Tensor | None = None,
    nfe: int = 20,
    solver: str = "ddim",
) -> torch.Tensor:
    """Integrate from ``noise`` (x_T, already on the model's device) to x₀ with ``nfe`` model calls."""
    sched = make_scheduler(model.schedule, solver, nfe)
    x = noise * sched.init_noise_sigma
    for t in sched.timesteps:
        t_batch = torch.full((x.shape[0],), float(t), device=x.device)
        eps = model(sched.scale_model_input(x, t), t_batch, labels)
        x = sched.step(eps, t, x).prev_sample
    return x
