"""Ablation runs: train the digits DM with each variant's recipe and seed, score its EMA snapshots on held-out noise."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from safetensors.torch import load_file

from lcsc.analysis.ablation import AblationConfig, Variant
from lcsc.data import load_digits_data
from lcsc.generate import generate
from lcsc.metrics import GaussianStats, reference_set
from lcsc.metrics.spaces import feature_space
from lcsc.models import ModelConfig, load_model
from lcsc.objectives.base import HELD_OUT_SEED_OFFSET
from lcsc.training import OptimConfig, RecordConfig, TrainConfig, Trainer
from lcsc.training.ema import ema_name

__all__ = ["run_ablation", "train_and_score", "variant_config"]


def variant_config(variant: Variant, seed: int, cfg: AblationConfig) -> TrainConfig:
    """The trainer config of ``variant`` (EMA snapshots at every evaluation step)."""
    return TrainConfig(
        model=ModelConfig(kind="dm", channels=cfg.channels), iterations=cfg.iterations, batch_size=cfg.batch_size,
        seed=seed, optim=OptimConfig(lr=cfg.lr, schedule=variant.momentum),
        record=RecordConfig(window=1, interval=1, ema_steps=cfg.eval_steps),
        ema_half_lives=(float(max(1, round(cfg.iterations * cfg.ema_fraction))),),
        timestep_sampler=variant.timesteps, clts_mu=variant.clts_mu,
        clts_target=max(1, round(cfg.iterations * variant.clts_target_fraction)), loss_weighting=variant.weighting,
        device=cfg.device, log_every=cfg.eval_every, sample_count=16, sample_nfe=cfg.eval_nfe)


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9.=_-]+", "_", name).strip("_")


def train_and_score(variant: Variant, seed: int, cfg: AblationConfig, out: Path, progress: bool = True) -> list[float]:
    """FD_digits (held-out noise, ``cfg.eval_samples`` samples) of the EMA at each evaluation step."""
    tc = variant_config(variant, seed, cfg)
    run_dir = out / _slug(variant.name) / f"seed-{seed}"
    data = load_digits_data()
    Trainer(tc, run_dir, data=data, progress=progress).run()
    features = feature_space("digits", cfg.device)
    ref = reference_set(data, features)
    model = load_model(run_dir / "last.safetensors", cfg.device)
    ema_dir = run_dir / "ema" / ema_name(half_life=tc.ema_half_lives[0])
    fds = []
    for step in cfg.eval_steps:
        model.load_state_dict(load_file(str(ema_dir / f"ema-{step:09d}.safetensors")))
        images = generate(model, cfg.eval_samples, HELD_OUT_SEED_OFFSET, nfe=cfg.eval_nfe, device=cfg.device)
        fds.append(ref.frechet.distance(GaussianStats.from_features(features(images))))
    return fds


def run_ablation(cfg: AblationConfig, out: str | Path, *, progress: bool = True,
                 on_run: Callable[[str, int, list[float]], None] | None = None) -> dict[str, dict[int, list[float]]]:
    """Train every variant × seed into ``out/<variant>/seed-<s>`` (resumable) and return the FD curves."""
    curves: dict[str, dict[int, list[float]]] = {}
    for variant in cfg.variants:
        for seed in cfg.seeds:
            fds = train_and_score(variant, seed, cfg, Path(out), progress)
            curves.setdefault(variant.name, {})[seed] = fds
            if on_run:
                on_run(variant.name, seed, fds)
    return curves
