# A small U-Net-style denoiser for 8×8 images (the DDPM architecture of Ho et al. 2020, scaled down for CPUs).
"""Small convolutional backbone: F(x, noise_cond, labels) for 8×8 (or any size divisible by 2) images."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SmallUNet", "timestep_embedding"]


def timestep_embedding(cond: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of a float condition (a DDPM step t or a scaled log σ), shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=cond.device, dtype=torch.float32) / half)
    args = cond.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv twice, with the embedding added as a per-channel shift between the convs."""

    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(min(8, cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SmallUNet(nn.Module):
    """Two resolutions (H and H/2): a residual block at H, one at H/2, one on the way up; ~180K parameters."""

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 32,
        emb_dim: int = 64,
        num_classes: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c1, c2 = channels, 2 * channels
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(num_classes, emb_dim) if num_classes > 0 else None
        self.conv_in = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, emb_dim, dropout)
        self.downsample = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.mid = ResBlock(c2, c2, emb_dim, dropout)
        self.upsample = nn.Conv2d(c2, c1, 3, padding=1)
        self.up1 = ResBlock(2 * c1, c1, emb_dim, dropout)
        self.norm_out = nn.GroupNorm(min(8, c1), c1)
        self.conv_out = nn.Conv2d(c1, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(
        self, x: torch.Tensor, noise_cond: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(noise_cond, self.emb_dim))
        if self.label_emb is not None and labels is not None:
            emb = emb + self.label_emb(labels)
        emb = F.silu(emb)
        h1 = self.down1(self.conv_in(x), emb)
        h = self.downsample(h1)
        h = self.mid(h, emb)
        h = self.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up1(torch.cat([h, h1], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))
