# A diffusers UNet2DModel with the noise schedule of its pipeline's scheduler_config.json, as lcsc's ε-model.
"""Models of diffusers training runs: built from the UNet's ``config.json`` with no user code.

:func:`read_diffusers_config` reads the UNet's ``config.json`` (a file, a UNet folder, or a pipeline folder holding
``unet/config.json``) and the noise schedule from the pipeline's ``scheduler/scheduler_config.json`` (or a
``scheduler_config.json`` beside the UNet's config): ``num_train_timesteps``, ``beta_schedule``, ``beta_start``,
``beta_end`` and ``prediction_type``; without one, diffusers' ``DDPMScheduler`` defaults (1000 steps, linear betas
1e-4 … 0.02, ε-prediction). :class:`DiffusersEpsilonModel` is the one generative interface ``model(x, t, labels)``
(an ε-predictor at DDPM step t) over it, so lcsc's samplers, objectives and merges work unchanged.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lcsc.atomic import read_json_object
from lcsc.diffusion.schedule import NoiseSchedule
from lcsc.errors import ConfigError

__all__ = ["DiffusersRunConfig", "DiffusersEpsilonModel", "read_diffusers_config", "build_diffusers_model",
           "check_weights_match", "PREDICTION_TYPES"]

PREDICTION_TYPES = ("epsilon", "v_prediction")
_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
_NOT_DDPM = ("ScoreSdeVeScheduler", "KarrasVeScheduler", "FlowMatchEulerDiscreteScheduler",
             "FlowMatchHeunDiscreteScheduler", "CMStochasticIterativeScheduler", "EDMEulerScheduler",
             "EDMDPMSolverMultistepScheduler")


@dataclass(frozen=True)
class DiffusersRunConfig:
    """What lcsc needs of a diffusers run: the UNet's constructor arguments, image shape and noise schedule.

    ``source`` is the UNet's config file and ``scheduler_source`` the scheduler config read (None: defaults).
    """

    unet: dict[str, Any] = field(compare=False)
    source: str
    scheduler_source: str | None
    in_channels: int
    resolution: int
    num_classes: int
    schedule: NoiseSchedule
    prediction_type: str = "epsilon"
    kind: str = "dm"

    @property
    def num_train_timesteps(self) -> int:
        return self.schedule.num_train_timesteps

    @property
    def beta_schedule(self) -> str:
        return self.schedule.beta_schedule


def _locate(path: Path) -> tuple[Path, Path | None]:
    """(the UNet's config.json, the scheduler config or None) for a config file, UNet folder or pipeline folder."""
    if path.is_dir():
        config = next((c for c in (path / "unet" / "config.json", path / "config.json") if c.is_file()), None)
        if config is None:
            raise ConfigError(f"{path}: holds neither unet/config.json nor config.json (expected a diffusers pipeline "
                              "folder, a UNet folder written by save_pretrained, or its config.json)")
    elif path.is_file():
        config = path
    else:
        raise ConfigError(f"model config {path}: no such file or folder")
    candidates = (config.parent / "scheduler_config.json", config.parent.parent / "scheduler" / "scheduler_config.json")
    return config, next((c for c in candidates if c.is_file()), None)


def _schedule(sched: dict[str, Any], source: str) -> tuple[NoiseSchedule, str]:
    """The noise schedule and prediction type a diffusers scheduler config describes (refusing what lcsc cannot)."""
    cls = sched.get("_class_name")
    if cls in _NOT_DDPM:
        raise ConfigError(f"{source}: {cls} is not a DDPM (discrete beta schedule) scheduler; lcsc samples DDPM-family "
                          "models only")
    if sched.get("trained_betas") is not None or sched.get("rescale_betas_zero_snr"):
        raise ConfigError(f"{source}: trained_betas / rescale_betas_zero_snr are not supported; use a linear, "
                          "scaled_linear or squaredcos_cap_v2 beta schedule")
    prediction = sched.get("prediction_type", "epsilon")
    if prediction not in PREDICTION_TYPES:
        raise ConfigError(f"{source}: prediction_type {prediction!r} is not supported (lcsc samples "
                          f"{' and '.join(PREDICTION_TYPES)} models)")
    beta_schedule = sched.get("beta_schedule", "linear")
    if beta_schedule not in _BETA_SCHEDULES:
        raise ConfigError(f"{source}: beta_schedule {beta_schedule!r} must be one of {', '.join(_BETA_SCHEDULES)}")
    try:
        schedule = NoiseSchedule(int(sched.get("num_train_timesteps", 1000)), beta_schedule,
                                 float(sched.get("beta_start", 0.0001)), float(sched.get("beta_end", 0.02)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: bad noise schedule ({exc})") from None
    if schedule.num_train_timesteps < 2:
        raise ConfigError(f"{source}: num_train_timesteps {schedule.num_train_timesteps} must be >= 2")
    return schedule, prediction


def _unet_kwargs(data: dict[str, Any], source: str) -> dict[str, Any]:
    from diffusers import UNet2DModel

    cls = data.get("_class_name", "UNet2DModel")
    if cls != "UNet2DModel":
        raise ConfigError(f"{source}: describes a {cls}; lcsc's built-in objectives take a pixel-space UNet2DModel "
                          "(pass a user objective, --objective file.py:function, for other models)")
    allowed = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in data.items() if k in allowed}
    if kwargs.get("time_embedding_type", "positional") == "fourier":
        raise ConfigError(f"{source}: time_embedding_type 'fourier' (a score-SDE model) is not a DDPM ε/v model")
    if kwargs.get("class_embed_type") is not None and not kwargs.get("num_class_embeds"):
        raise ConfigError(f"{source}: class_embed_type {kwargs['class_embed_type']!r} needs conditioning inputs lcsc "
                          "cannot draw; only unconditional or num_class_embeds models are supported")
    return kwargs


def _shape(kwargs: dict[str, Any], source: str) -> tuple[int, int]:
    """(in_channels, resolution) of the UNet's square images."""
    size = kwargs.get("sample_size")
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise ConfigError(f"{source}: sample_size {size} is not square; lcsc samples square images")
        size = size[0]
    if not isinstance(size, int) or size < 4:
        raise ConfigError(f"{source}: sample_size {size!r} must be an integer >= 4 (the image side in pixels)")
    channels = int(kwargs.get("in_channels", 3))
    out = int(kwargs.get("out_channels", 3))
    if out not in (channels, 2 * channels):
        raise ConfigError(f"{source}: out_channels {out} must equal in_channels {channels} (or twice it for a learned "
                          "variance, whose first half is the ε/v prediction)")
    return channels, size


def read_diffusers_config(path: str | Path) -> DiffusersRunConfig:
    """The run's UNet and noise schedule from ``path`` (see the module docstring); errors name the file."""
    config_path, sched_path = _locate(Path(path))
    kwargs = _unet_kwargs(read_json_object(config_path, "a diffusers config"), str(config_path))
    channels, size = _shape(kwargs, str(config_path))
    sched = read_json_object(sched_path, "a diffusers scheduler config") if sched_path is not None else {}
    schedule, prediction = _schedule(sched, str(sched_path or config_path))
    return DiffusersRunConfig(unet=kwargs, source=str(config_path), scheduler_source=str(sched_path) if sched_path
                              else None, in_channels=channels, resolution=size,
                              num_classes=int(kwargs.get("num_class_embeds") or 0), schedule=schedule,
                              prediction_type=prediction)


class DiffusersEpsilonModel(nn.Module):
    """ε̂(x_t, t) of a diffusers ``UNet2DModel`` at DDPM step t ∈ [0, T−1]: ``unet(x, t).sample`` for ε-prediction,
    √ᾱ_t·v̂ + √(1−ᾱ_t)·x_t for v-prediction (ᾱ interpolated at fractional t). The UNet's sub-modules are this
    module's own, so its state-dict keys are the UNet's and a diffusers checkpoint's tensors load unchanged."""

    kind = "dm"

    def __init__(self, unet: nn.Module, config: DiffusersRunConfig) -> None:
        super().__init__()
        if any(True for _ in unet.named_parameters(recurse=False)) or any(True for _ in unet.named_buffers(recurse=False)):
            raise ConfigError(f"{config.source}: the UNet holds top-level tensors; lcsc cannot wrap it")
        for name, child in unet.named_children():
            self.add_module(name, child)
        self.__dict__["unet"] = unet  # not registered: its children are ours (keys without a prefix)
        self.config = config
        self.schedule = config.schedule
        self._learned_time = unet.config.time_embedding_type == "learned"
        self._ac: torch.Tensor | None = None

    def train(self, mode: bool = True) -> DiffusersEpsilonModel:
        super().train(mode)
        self.unet.training = mode
        return self

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, labels: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t.float()
        steps = t.round().long() if self._learned_time else t
        out = self.unet(x, steps, class_labels=labels if self.config.num_classes else None).sample[:, : x.shape[1]]
        if self.config.prediction_type == "v_prediction":
            a = self._alpha_bar(t, x.device).view(-1, 1, 1, 1)
            out = a.sqrt() * out + (1 - a).sqrt() * x
        return out

    def _alpha_bar(self, t: torch.Tensor, device: torch.device) -> torch.Tensor:
        if self._ac is None or self._ac.device != device:
            self._ac = self.schedule.alphas_cumprod().float().to(device)
        top = self._ac.shape[0] - 1
        lo = t.floor().clamp(0, top)
        w = (t - lo).clamp(0, 1)
        lo = lo.long()
        return self._ac[lo] * (1 - w) + self._ac[(lo + 1).clamp(max=top)] * w


def build_diffusers_model(config: DiffusersRunConfig) -> DiffusersEpsilonModel:
    """A fresh ``UNet2DModel`` of ``config`` wrapped as an ε-model (weights come from the checkpoints)."""
    from diffusers import UNet2DModel

    try:
        unet = UNet2DModel(**config.unet)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{config.source}: diffusers cannot build a UNet2DModel from it ({exc})") from None
    return DiffusersEpsilonModel(unet, config).eval()


def check_weights_match(model: nn.Module, tensors: dict[str, torch.Tensor], config_source: str,
                        checkpoint: str | Path) -> None:
    """One :class:`ConfigError` naming the config file and the first key that is missing from the checkpoint, has
    another shape there, or is in the checkpoint but not in the model."""
    expected = model.state_dict()
    for name, t in expected.items():
        if name not in tensors:
            raise ConfigError(f"{config_source} does not match the checkpoints: {checkpoint} has no tensor {name!r} "
                              f"(missing key; {len(expected)} expected, {len(tensors)} found)")
        if tuple(tensors[name].shape) != tuple(t.shape):
            raise ConfigError(f"{config_source} does not match the checkpoints: tensor {name!r} has shape "
                              f"{tuple(t.shape)} in the config's UNet but {tuple(tensors[name].shape)} in {checkpoint}")
    extra = [n for n in tensors if n not in expected]
    if extra:
        raise ConfigError(f"{config_source} does not match the checkpoints: {checkpoint} holds tensor {extra[0]!r} "
                          f"that the config's UNet lacks (unexpected key; {len(extra)} in all)")
