"""diffusers ``UNet2DModel`` presets behind the backbone call ``net(x, noise_cond, labels)`` (GPU sizes)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["DiffusersUNet", "UNET_PRESETS"]

# unet32 follows DDPM's CIFAR-10 network (google/ddpm-cifar10-32, 35.7M parameters); unet64 adds a wider
# fourth level and attention at 16×16 and 8×8 (88M parameters), in the spirit of the ImageNet-64 models.
UNET_PRESETS: dict[str, dict[str, Any]] = {
    "unet32": {
        "block_out_channels": (128, 256, 256, 256),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    },
    "unet64": {
        "block_out_channels": (128, 256, 384, 512),
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    },
}


class DiffusersUNet(nn.Module):
    """Adapter: ``UNet2DModel(x, timestep=noise_cond, class_labels=labels).sample``."""

    def __init__(self, preset: str, in_channels: int, resolution: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        self.unet = UNet2DModel(
            sample_size=resolution,
            in_channels=in_channels,
            out_channels=in_channels,
            layers_per_block=2,
            dropout=dropout,
            num_class_embeds=num_classes or None,
            **UNET_PRESETS[preset],
        )

    def forward(
        self, x: torch.Tensor, noise_cond: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.unet.config.num_class_embeds is None:
            labels = None
        return self.unet(x, noise_cond, class_labels=labels).sample
