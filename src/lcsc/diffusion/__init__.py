"""ε-prediction DDPM: noise schedules, the training loss, DDIM / DPM-Solver sampling."""

from lcsc.diffusion.loss import DDPMLoss, uniform_timesteps
from lcsc.diffusion.sampling import DM_SOLVERS, make_scheduler, sample_dm
from lcsc.diffusion.schedule import NoiseSchedule

__all__ = ["DDPMLoss", "DM_SOLVERS", "NoiseSchedule", "make_scheduler", "sample_dm", "uniform_timesteps"]
