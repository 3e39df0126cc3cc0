"""Training: the trainer, online and power EMAs, the checkpoint recorder, pluggable timestep/weighting/optimiser schedules."""

from lcsc.training.clts import CLTSSampler
from lcsc.training.config import ConsistencyConfig, OptimConfig, RecordConfig, TrainConfig
from lcsc.training.ema import MultiEMA, ema_name
from lcsc.training.mdlrc import MomentumDecaySchedule
from lcsc.training.minsnr import MinSNRWeighting
from lcsc.training.phema import PowerEMA, gamma_to_sigma_rel, phema_name, sigma_rel_to_gamma
from lcsc.training.plan import RecordPlan
from lcsc.training.plugins import (
    LOSS_WEIGHTINGS,
    OPTIM_SCHEDULES,
    TIMESTEP_SAMPLERS,
    ConstantSchedule,
    register,
)
from lcsc.training.recorder import STORAGE_DTYPES, CheckpointRecorder
from lcsc.training.trainer import Trainer, TrainResult, train

__all__ = [
    "LOSS_WEIGHTINGS",
    "OPTIM_SCHEDULES",
    "STORAGE_DTYPES",
    "TIMESTEP_SAMPLERS",
    "CLTSSampler",
    "CheckpointRecorder",
    "ConsistencyConfig",
    "ConstantSchedule",
    "MinSNRWeighting",
    "MomentumDecaySchedule",
    "MultiEMA",
    "OptimConfig",
    "PowerEMA",
    "RecordConfig",
    "RecordPlan",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "ema_name",
    "gamma_to_sigma_rel",
    "phema_name",
    "register",
    "sigma_rel_to_gamma",
    "train",
]
