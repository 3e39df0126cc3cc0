"""Resolve a run's config against its data and build the pieces: model, optimiser, loss, EMAs."""

from __future__ import annotations

import copy
import dataclasses

import torch
from safetensors.torch import load_file
from torch import nn

from lcsc.consistency.losses import ConsistencyDistillationLoss, ConsistencyTrainingLoss
from lcsc.consistency.teacher import EDMTeacher
from lcsc.data import ImageData
from lcsc.diffusion.loss import DDPMLoss
from lcsc.errors import CheckpointError, ConfigError
from lcsc.models import GenerativeModel, build_model, load_model, read_metadata, read_model_config
from lcsc.models.build import read_data_info
from lcsc.training.config import TrainConfig
from lcsc.training.plugins import LOSS_WEIGHTINGS, OPTIM_SCHEDULES, TIMESTEP_SAMPLERS, make_plugin

__all__ = [
    "resolve_config", "build_training_model", "make_optimizer", "make_loss", "make_schedule", "make_target", "load_teacher",
]


def resolve_config(config: TrainConfig, data: ImageData) -> TrainConfig:
    """Fill the model's channels/resolution from the data; check classes; fit a CD student's σ range to its teacher."""
    m = config.model
    if m.num_classes and data.num_classes != m.num_classes:
        raise ConfigError(f"class-conditional model needs labels for {m.num_classes} classes but {data.source} "
                          f"has {data.num_classes or 'no'} labels")
    m = dataclasses.replace(m, in_channels=data.channels, resolution=data.resolution)
    cm = config.consistency
    if m.kind == "cm" and cm is not None and cm.mode == "cd":
        teacher = read_model_config(cm.teacher)
        if teacher.kind != "dm" or (teacher.in_channels, teacher.resolution) != (m.in_channels, m.resolution):
            raise ConfigError(f"teacher {cm.teacher} must be a DM for {m.in_channels}×{m.resolution}² images "
                              f"(it is a {teacher.kind} for {teacher.in_channels}×{teacher.resolution}² images)")
        info, mine = read_data_info(cm.teacher), data.describe()
        if info is not None and (info.get("source"), info.get("count")) != (mine["source"], mine["count"]):
            raise ConfigError(f"teacher {cm.teacher} was trained on {info.get('source')} ({info.get('count')} images), "
                              f"not on the student's data {mine['source']} ({mine['count']} images)")
        sig = load_model(cm.teacher).schedule.sigmas()
        m = dataclasses.replace(m, sigma_min=max(m.sigma_min, float(sig[0])), sigma_max=min(m.sigma_max, float(sig[-1])))
    return dataclasses.replace(config, model=m)


def build_training_model(config: TrainConfig, device: torch.device) -> GenerativeModel:
    """Fresh weights from the run's seed (global RNG untouched), or the weights of ``init_from``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model)
    if config.init_from:
        _load_init(model, config.init_from)
    return model.to(device).train()


def _load_init(model: nn.Module, path: str) -> None:
    """``--init-from``: the weights of a checkpoint of the same architecture (one-line errors otherwise)."""
    if not str(path).endswith(".safetensors"):
        raise CheckpointError(f"{path}: --init-from needs a .safetensors checkpoint")
    read_metadata(path)  # a missing or unreadable file: a CheckpointError naming it
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ; torch's message spans lines
        raise CheckpointError(f"{path}: weights do not fit the model ({' '.join(str(exc).split())[:300]}); "
                              "--init-from needs a checkpoint of the same --model and --channels") from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model ({len(missing)} missing such as {missing[:3]}, "
                              f"{len(unexpected)} unexpected such as {unexpected[:3]}); --init-from needs a "
                              "checkpoint of the same --model and --channels")


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = config.optim
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)


def make_schedule(config: TrainConfig):
    o = config.optim
    return make_plugin(OPTIM_SCHEDULES, "optimizer schedule", o.schedule, lr=o.lr, warmup=o.warmup,
                       total_steps=config.iterations, beta1=o.beta1, beta_min=o.beta_min, decay_steps=o.decay_steps)


def load_teacher(path: str, device: torch.device) -> EDMTeacher:
    return EDMTeacher(load_model(path, device)).to(device)


def make_loss(config: TrainConfig, device: torch.device):
    """The DDPM loss with the configured plug-ins, or the CT/CD loss."""
    if config.model.kind == "dm":
        from lcsc.diffusion.schedule import NoiseSchedule

        schedule = NoiseSchedule(config.model.num_train_timesteps, config.model.beta_schedule)
        sampler = make_plugin(TIMESTEP_SAMPLERS, "timestep sampler", config.timestep_sampler,
                              num_train_timesteps=schedule.num_train_timesteps, total_steps=config.iterations,
                              mu=config.clts_mu, sigma=config.clts_sigma, target=config.clts_target)
        weighting = make_plugin(LOSS_WEIGHTINGS, "loss weighting", config.loss_weighting, gamma=config.minsnr_gamma)
        return DDPMLoss(schedule, sampler, weighting)
    cm = config.consistency
    if cm.mode == "ct":
        return ConsistencyTrainingLoss(config.iterations, cm.s0, cm.s1, cm.p_mean, cm.p_std, cm.huber_c)
    return ConsistencyDistillationLoss(load_teacher(cm.teacher, device), cm.num_scales, cm.solver, cm.huber_c)


def make_target(config: TrainConfig, model: nn.Module) -> nn.Module | None:
    """θ⁻ as an EMA copy when ``target_ema`` > 0 (original CD); None means θ⁻ = stop-grad(θ) (improved CT)."""
    cm = config.consistency
    if config.model.kind != "cm" or cm is None or cm.target_ema == 0:
        return None
    return copy.deepcopy(model).requires_grad_(False)
