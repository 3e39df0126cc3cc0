# Checkpoint folders of accelerate's ``Accelerator.save_state`` and the diffusers example training loops' save hook.
"""Which file of a ``checkpoint-N/`` folder holds the model weights, and which files are training state.

``save_state`` writes ``model.safetensors`` (``model_1.safetensors``, … for further prepared models; ``pytorch_model
.bin`` without safe serialisation) beside ``optimizer.bin``, ``scheduler.bin``, ``sampler.bin``, ``scaler.pt``,
``random_states_0.pkl`` and ``custom_checkpoint_0.pkl``. Those are pickles of training state: they are never loaded
and never taken for checkpoints. The diffusers examples register a save hook that writes the UNet with
``save_pretrained`` to ``checkpoint-N/unet/`` (and an EMA copy to ``unet_ema/``) instead of ``model.safetensors``.
"""

from __future__ import annotations

import re
from pathlib import Path

from lcsc.errors import CheckpointError

__all__ = ["CHECKPOINT_DIR", "STATE_FILE", "MODEL_FILE", "is_training_checkpoint", "is_state_file",
           "training_checkpoint_weights", "step_from_folder"]

CHECKPOINT_DIR = re.compile(r"checkpoint[-_](\d+)")
STATE_FILE = re.compile(r"(optimizer|scheduler|sampler|dl_state_dict)(_\d+)?\.bin|scaler\.pt|"
                        r"(random_states|custom_checkpoint)_\d+\.pkl")
MODEL_FILE = re.compile(r"(model|pytorch_model)(_\d+)?\.(safetensors|bin)")
_STATE_MARKERS = ("random_states_0.pkl",)  # save_state always writes it (process 0)
_DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
_PREFERRED_SUBFOLDER = "unet"  # the raw weights; unet_ema (the EMA copy) is read only when named


def is_state_file(path: Path) -> bool:
    """True for accelerate's training-state files (optimizer, scheduler, sampler, scaler, RNG states)."""
    return STATE_FILE.fullmatch(path.name) is not None


def is_training_checkpoint(path: Path) -> bool:
    """True for a folder named ``checkpoint-N`` / ``checkpoint_N``, or one holding accelerate's ``random_states_0.pkl``."""
    if not path.is_dir():
        return False
    return CHECKPOINT_DIR.fullmatch(path.name) is not None or any((path / m).is_file() for m in _STATE_MARKERS)


def _model_subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and (p / _DIFFUSERS_WEIGHTS).is_file())


def _model_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and MODEL_FILE.fullmatch(p.name))


def training_checkpoint_weights(path: Path) -> Path:
    """The weights of one training checkpoint folder: ``unet/`` (a diffusers model folder), else the only
    ``save_pretrained`` sub-folder, else the only ``model*.safetensors`` / ``pytorch_model*.bin``; several
    candidates or none are an error naming them."""
    subfolders = _model_subfolders(path)
    names = [p.name for p in subfolders]
    if _PREFERRED_SUBFOLDER in names:
        return path / _PREFERRED_SUBFOLDER
    if len(subfolders) == 1:
        return subfolders[0]
    files = _model_files(path)
    if len(subfolders) + len(files) == 1:
        return files[0]
    candidates = [p.name + ("/" if p.is_dir() else "") for p in (*subfolders, *files)]
    if candidates:
        example = candidates[-1].rstrip("/")
        raise CheckpointError(
            f"{path}: holds several models ({', '.join(candidates)}); name the one to combine, e.g. "
            f"{path.parent}/{path.name.rstrip('0123456789')}*/{example}")
    sharded = sorted(p.name for p in path.glob("*.index.json"))
    why = f" (sharded weights {sharded[0]} are not supported)" if sharded else ""
    raise CheckpointError(
        f"{path}: training checkpoint folder holds no model weights{why}; looked for unet/{_DIFFUSERS_WEIGHTS}, "
        f"a sub-folder with {_DIFFUSERS_WEIGHTS}, model.safetensors, model_N.safetensors and pytorch_model.bin "
        "(optimizer.bin, scheduler.bin, scaler.pt and random_states_*.pkl are training state and are never loaded)")


def step_from_folder(path: Path) -> int | None:
    """The step of a model inside ``checkpoint-N/`` (``checkpoint-N/unet``, ``checkpoint-N/model_1.safetensors``):
    N; None for anything else."""
    match = CHECKPOINT_DIR.fullmatch(path.parent.name)
    if match is None or not (path.is_dir() or MODEL_FILE.fullmatch(path.name)):
        return None
    return int(match.group(1))
