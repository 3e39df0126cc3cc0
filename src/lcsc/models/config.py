"""ModelConfig: everything needed to rebuild a DM or CM from a checkpoint's metadata."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from lcsc.errors import ConfigError

__all__ = ["ModelConfig", "KINDS", "BACKBONES", "BETA_SCHEDULES"]

KINDS = ("dm", "cm")
BACKBONES = ("small", "unet32", "unet64")
BETA_SCHEDULES = ("linear", "cosine")


@dataclass(frozen=True)
class ModelConfig:
    """A generative model: ``kind`` "dm" (ε-prediction DDPM) or "cm" (EDM-parameterised consistency model).

    DM fields: ``num_train_timesteps`` T and ``beta_schedule``. CM fields: the Karras/EDM noise range
    ``sigma_min``..``sigma_max``, ``sigma_data`` and ``rho``. ``channels`` is the width of the small backbone.
    """

    kind: str = "dm"
    backbone: str = "small"
    in_channels: int = 1
    resolution: int = 8
    num_classes: int = 0
    channels: int = 32
    dropout: float = 0.0
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0

    def __post_init__(self) -> None:
        checks = [
            (self.kind in KINDS, f"model kind {self.kind!r} must be one of {KINDS}"),
            (self.backbone in BACKBONES, f"backbone {self.backbone!r} must be one of {BACKBONES}"),
            (self.beta_schedule in BETA_SCHEDULES, f"beta schedule {self.beta_schedule!r} must be one of {BETA_SCHEDULES}"),
            (self.in_channels >= 1, f"in_channels {self.in_channels} must be >= 1"),
            (self.resolution >= 4 and self.resolution % 2 == 0, f"resolution {self.resolution} must be even and >= 4"),
            (self.num_classes >= 0, f"num_classes {self.num_classes} must be >= 0"),
            (self.channels >= 8, f"channels {self.channels} must be >= 8"),
            (0.0 <= self.dropout < 1.0, f"dropout {self.dropout} must be in [0, 1)"),
            (self.num_train_timesteps >= 2, f"num_train_timesteps {self.num_train_timesteps} must be >= 2"),
            (0 < self.sigma_min < self.sigma_max, f"need 0 < sigma_min ({self.sigma_min}) < sigma_max ({self.sigma_max})"),
            (self.sigma_data > 0 and self.rho > 0, "sigma_data and rho must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict tagged with ``"lcsc_model": 1`` so a checkpoint's metadata can be recognised."""
        return {"lcsc_model": 1, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming ``source``."""
        if not isinstance(data, dict) or data.get("lcsc_model") != 1:
            raise ConfigError(f"{source}: not an lcsc model config (no \"lcsc_model\": 1 entry)")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields - {"lcsc_model"})
        if unknown:
            raise ConfigError(f"{source}: unknown model config keys {unknown}")
        return cls(**{k: v for k, v in data.items() if k in fields})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
