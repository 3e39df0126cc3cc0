"""Build a DM/CM from a :class:`ModelConfig`, or rebuild one from a checkpoint's metadata alone."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from lcsc.errors import CheckpointError, ConfigError
from lcsc.metadata import config_hash, read_metadata
from lcsc.models.config import ModelConfig
from lcsc.models.diffusers_unet import DiffusersUNet
from lcsc.models.generative import ConsistencyModel, EpsilonModel, GenerativeModel
from lcsc.models.small_unet import SmallUNet

__all__ = ["build_backbone", "build_model", "read_model_config", "read_metadata", "read_data_info", "load_model",
           "count_parameters"]


def build_backbone(config: ModelConfig) -> nn.Module:
    """The network F(x, noise_cond, labels) named by ``config.backbone``."""
    if config.backbone == "small":
        return SmallUNet(config.in_channels, config.channels, 2 * config.channels, config.num_classes, config.dropout)
    if config.resolution != int(config.backbone[4:]):
        raise ConfigError(f"backbone {config.backbone} is for {config.backbone[4:]}×{config.backbone[4:]} images, "
                          f"not {config.resolution}×{config.resolution}")
    return DiffusersUNet(config.backbone, config.in_channels, config.resolution, config.num_classes, config.dropout)


def build_model(config: ModelConfig) -> GenerativeModel:
    """An :class:`EpsilonModel` (kind "dm") or :class:`ConsistencyModel` (kind "cm") with fresh weights."""
    cls = EpsilonModel if config.kind == "dm" else ConsistencyModel
    return cls(build_backbone(config), config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def read_data_info(path: str | Path) -> dict | None:
    """What ``lcsc train`` recorded about the training data (spec, resolution, count, …), or None."""
    raw = read_metadata(path).get("data")
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata 'data' is not JSON ({exc})") from exc


def read_model_config(path: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` stored in a checkpoint's safetensors metadata."""
    meta = read_metadata(path)
    if "config" not in meta:
        raise CheckpointError(f"{path}: metadata has no model config; it was not written by lcsc's recorder")
    try:
        data = json.loads(meta["config"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata config is not JSON ({exc})") from exc
    if "config_hash" in meta and meta["config_hash"] != config_hash(data):
        raise CheckpointError(f"{path}: metadata config does not match its config_hash (edited or corrupt)")
    return ModelConfig.from_dict(data, source=str(path))


def load_model(path: str | Path, device: str | torch.device = "cpu") -> GenerativeModel:
    """Rebuild the model a checkpoint describes and load its weights (float32), in eval mode."""
    config = read_model_config(path)
    model = build_model(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval()
