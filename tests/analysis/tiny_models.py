"""Test helpers for the analyses: random tiny checkpoints that need no training."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lcsc.checkpoints import save_checkpoint
from lcsc.models import build_model
from lcsc.models.config import ModelConfig


def tiny_dm_checkpoint(path: Path, seed: int, channels: int = 8) -> Path:
    """A random small-UNet DM checkpoint on the digits data (no training needed)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(kind="dm", channels=channels)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    extra = {"data": json.dumps({"spec": "digits", "resolution": 8})}
    return save_checkpoint(path, model.state_dict(), step=10, config=cfg.to_dict(), extra=extra)
