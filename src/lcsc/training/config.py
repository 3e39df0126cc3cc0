"""Frozen configuration of a training run: optimiser, recording, consistency options, the run itself."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from lcsc.errors import ConfigError
from lcsc.models.config import ModelConfig
from lcsc.training.phema import sigma_rel_to_gamma

__all__ = ["OptimConfig", "RecordConfig", "ConsistencyConfig", "TrainConfig"]


@dataclass(frozen=True)
class OptimConfig:
    """Adam/AdamW with an optional linear warm-up and a pluggable schedule (``schedule`` names a registry entry:
    "constant", "md" (momentum decay from ``beta1`` to ``beta_min`` over ``decay_steps``, default the whole run) or
    "mdlrc" (the same with learning-rate compensation))."""

    name: str = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    warmup: int = 0
    schedule: str = "constant"
    beta_min: float = 0.5
    decay_steps: int | None = None

    def __post_init__(self) -> None:
        if self.name not in ("adam", "adamw"):
            raise ConfigError(f"optimizer {self.name!r} must be 'adam' or 'adamw'")
        if not 0 < self.lr < math.inf or not 0 <= self.beta1 < 1 or not 0 <= self.beta2 < 1:
            raise ConfigError(f"need a finite lr > 0 and betas in [0, 1) (got lr={self.lr}, betas={self.beta1}, "
                              f"{self.beta2})")
        if not 0 <= self.weight_decay < math.inf:
            raise ConfigError(f"weight decay {self.weight_decay} must be a finite number >= 0")
        if self.warmup < 0 or (self.grad_clip is not None and self.grad_clip <= 0):
            raise ConfigError("warmup must be >= 0 and grad_clip > 0 (or None)")


@dataclass(frozen=True)
class RecordConfig:
    """Windows of ``window`` iterations ending at ``ends`` (default: the last step), one checkpoint every ``interval``;
    power-EMA snapshots (for post-hoc EMA) of each ``phema_sigma_rels`` every ``phema_every`` iterations (default
    iterations // 32, at least 1) and at the last step."""

    window: int = 1000
    interval: int = 10
    ends: tuple[int, ...] = ()
    storage_dtype: str = "float32"
    disk_budget: int | None = None
    ema_steps: tuple[int, ...] = ()
    phema_sigma_rels: tuple[float, ...] = ()
    phema_every: int | None = None
    window_start_emas: bool = True  # EMA snapshots at each window's start too (anchors: ema-start:NAME)

    def __post_init__(self) -> None:
        object.__setattr__(self, "phema_sigma_rels", tuple(float(s) for s in self.phema_sigma_rels))
        for s in self.phema_sigma_rels:
            sigma_rel_to_gamma(s)
        if self.phema_every is not None and int(self.phema_every) < 1:
            raise ConfigError(f"phema_every={self.phema_every} must be >= 1 iteration (or None for iterations // 32)")


@dataclass(frozen=True)
class ConsistencyConfig:
    """CT (improved recipe) or CD (``teacher`` checkpoint, ``num_scales`` levels, one ``solver`` step)."""

    mode: str = "ct"
    s0: int = 10
    s1: int = 1280
    p_mean: float = -1.1
    p_std: float = 2.0
    huber_c: float | None = None
    teacher: str | None = None
    num_scales: int = 18
    solver: str = "heun"
    target_ema: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("ct", "cd"):
            raise ConfigError(f"consistency mode {self.mode!r} must be 'ct' or 'cd'")
        if self.mode == "cd" and not self.teacher:
            raise ConfigError("consistency distillation needs a teacher DM checkpoint (--teacher)")
        if self.solver not in ("euler", "heun"):
            raise ConfigError(f"CD solver {self.solver!r} must be 'euler' or 'heun'")
        if not 2 <= self.s0 <= self.s1 or self.num_scales < 2:
            raise ConfigError(f"need 2 <= s0 <= s1 and num_scales >= 2 (got {self.s0}, {self.s1}, {self.num_scales})")
        if not 0.0 <= self.target_ema < 1.0:
            raise ConfigError(f"target EMA rate μ (--target-ema) {self.target_ema} must be in [0, 1); "
                              "0 means θ⁻ = stop-grad(θ)")


@dataclass(frozen=True)
class TrainConfig:
    """A whole run. ``model`` is resolved against the data (channels, resolution, classes) before training."""

    model: ModelConfig
    data: str = "digits"
    resolution: int | None = None
    iterations: int = 2000
    batch_size: int = 128
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    ema_half_lives: tuple[float, ...] = ()
    ema_rates: tuple[float, ...] = ()
    timestep_sampler: str = "uniform"
    clts_mu: float = 0.3
    clts_sigma: float | None = None
    clts_target: int | None = None
    loss_weighting: str = "none"
    minsnr_gamma: float = 5.0
    consistency: ConsistencyConfig | None = None
    init_from: str | None = None
    device: str = "cpu"
    log_every: int = 10
    save_every: int = 500
    sample_count: int = 64
    sample_nfe: int | None = None
    sample_solver: str = "dpm-solver"

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_size < 1:
            raise ConfigError(f"iterations ({self.iterations}) and batch size ({self.batch_size}) must be >= 1")
        if self.log_every < 1 or self.save_every < 1:
            raise ConfigError(f"log_every ({self.log_every}) and save_every ({self.save_every}) must be >= 1")
        if self.sample_count < 0:
            raise ConfigError(f"sample_count {self.sample_count} (--sample-count) must be >= 0 (0: no samples.png)")
        if self.sample_nfe is not None and self.sample_nfe < 1:
            raise ConfigError(f"sample_nfe {self.sample_nfe} (--sample-nfe) must be >= 1")
        if self.model.kind == "cm" and self.consistency is None:
            object.__setattr__(self, "consistency", ConsistencyConfig())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["model"] = ModelConfig.from_dict(data["model"])
        data["optim"] = OptimConfig(**data["optim"])
        rec = dict(data["record"])
        rec["ends"] = tuple(rec.get("ends", ()))
        rec["ema_steps"] = tuple(rec.get("ema_steps", ()))
        rec["phema_sigma_rels"] = tuple(rec.get("phema_sigma_rels", ()))
        data["record"] = RecordConfig(**rec)
        if data.get("consistency") is not None:
            data["consistency"] = ConsistencyConfig(**data["consistency"])
        for key in ("ema_half_lives", "ema_rates"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)
