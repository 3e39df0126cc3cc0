"""Backbones (small CPU U-Net, diffusers UNet2DModel presets) behind one generative interface."""

from lcsc.models.build import (
    build_backbone,
    build_model,
    count_parameters,
    load_model,
    read_data_info,
    read_metadata,
    read_model_config,
)
from lcsc.models.config import BACKBONES, KINDS, ModelConfig
from lcsc.models.generative import ConsistencyModel, EpsilonModel, GenerativeModel

__all__ = [
    "BACKBONES",
    "KINDS",
    "ConsistencyModel",
    "EpsilonModel",
    "GenerativeModel",
    "ModelConfig",
    "build_backbone",
    "build_model",
    "count_parameters",
    "load_model",
    "read_data_info",
    "read_metadata",
    "read_model_config",
]
