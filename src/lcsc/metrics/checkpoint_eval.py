"""Evaluate lcsc checkpoints: sample on fixed seeded noise, score in a feature space, return dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lcsc.data import load_data
from lcsc.errors import ConfigError
from lcsc.generate import generate
from lcsc.metrics.evaluate import EvalResult, evaluate_images, parse_metrics
from lcsc.metrics.reference import reference_set
from lcsc.metrics.spaces import feature_space
from lcsc.models import load_model, read_data_info, read_metadata
from lcsc.precision import check_autocast

__all__ = ["CheckpointEval", "check_counts", "evaluate_checkpoints", "expand_targets", "default_space_for"]


@dataclass(frozen=True)
class CheckpointEval:
    """One checkpoint's metrics plus what it was (step, EMA name) and its first samples."""

    path: Path
    step: int | None
    result: EvalResult
    samples: torch.Tensor


def expand_targets(targets: list[str | Path]) -> list[Path]:
    """A run folder → its ``last.safetensors`` and each EMA's latest snapshot; a folder → its checkpoints."""
    out: list[Path] = []
    for t in map(Path, targets):
        if t.is_file():
            out.append(t)
        elif (t / "ema").is_dir() or (t / "last.safetensors").is_file():
            out += [t / "last.safetensors"] if (t / "last.safetensors").is_file() else []
            out += [sorted(d.glob("ema-*.safetensors"))[-1] for d in sorted((t / "ema").glob("*"))
                    if d.is_dir() and any(d.glob("ema-*.safetensors"))]
        elif t.is_dir():
            out += sorted(t.glob("*.safetensors"))
        else:
            raise ConfigError(f"{t}: no such checkpoint file or run folder")
    if not out:
        raise ConfigError(f"{', '.join(map(str, targets))}: no .safetensors checkpoints found (checkpoints of a "
                          "diffusers run: pass --model-config CONFIG --reference IMAGES|STATS.npz)")
    return out


def default_space_for(data_spec: str | None, shape: tuple[int, ...]) -> str:
    """FD_digits for the embedded digits at 8×8, Inception otherwise."""
    return "digits" if data_spec == "digits" and tuple(shape) == (1, 8, 8) else "inception"


def check_counts(num_samples: int, nfe: int | None) -> None:
    """Refuse a sample count below 2 or an NFE below 1 (a :class:`ConfigError` naming the option)."""
    if num_samples < 2:
        raise ConfigError(f"--samples {num_samples}: every metric needs at least 2 samples per checkpoint")
    if nfe is not None and nfe < 1:
        raise ConfigError(f"--nfe {nfe}: must be >= 1 network evaluation per sample")


def evaluate_checkpoints(paths: list[Path], *, features: str | None = None, metrics="fd", num_samples: int = 1000,
                         nfe: int | None = None, solver: str = "dpm-solver", seed: int = 0, data: str | None = None,
                         device: str = "cpu", progress: bool = False,
                         autocast: str | None = None) -> list[CheckpointEval]:
    """Score each checkpoint's samples (same seeded noise for all) against the training data's reference set
    (``autocast="bf16"``: the network under bf16 autocast while sampling; features stay float32)."""
    check_counts(num_samples, nfe)  # before the reference set is built: a bad value fails at once
    metrics = parse_metrics(metrics)
    autocast = check_autocast(autocast)
    info = read_data_info(paths[0]) or {}
    spec = data or info.get("spec")
    if not spec:
        raise ConfigError(f"{paths[0]}: no training data in its metadata; pass --data (a diffusers run's checkpoint "
                          "or merge: --model-config CONFIG --reference IMAGES|STATS.npz)")
    real = load_data(spec, None if data else info.get("resolution"))
    space = features or default_space_for(spec, tuple(real.images.shape[1:]))
    extractor = feature_space(space, device)
    reference = reference_set(real, extractor, progress=progress)
    results = []
    for path in paths:
        model = load_model(path, device)
        images = generate(model, num_samples, seed, nfe=nfe, solver=solver, device=device, progress=progress,
                          autocast=autocast)
        result = evaluate_images(images, reference, extractor, metrics, progress=progress)
        step = read_metadata(path).get("step")
        results.append(CheckpointEval(path, int(step) if step else None, result, images[:64]))
    return results
