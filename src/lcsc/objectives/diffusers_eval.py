# `lcsc eval --model-config`: score diffusers UNet2DModel checkpoints and merges on the search's held-out protocol.
"""Evaluate checkpoints of a diffusers training run (no lcsc metadata): the model comes from ``--model-config``.

Targets are accelerate ``checkpoint-N/`` folders, ``save_pretrained`` UNet folders, run folders holding
``checkpoint-N/`` folders, and the ``.safetensors`` merges ``lcsc merge`` / ``lcsc search`` write for such a run
(they hold the UNet's own state-dict keys, whatever ``--key`` the search read its checkpoints with). Every target's
tensors are checked against the UNet before anything is sampled.

The noise is the search's: :func:`lcsc.objectives.diffusers.diffusers_objective` on ``seed`` and, unless
``search_noise``, its :meth:`~lcsc.objectives.base.SeededObjective.held_out` copy — the objective the search's
held-out report scores with. So FD here equals that report's number for the same samples, NFE, solver and seed.
Built on the search's objective, this evaluation lives beside it (:mod:`lcsc.objectives.diffusers`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from lcsc.checkpoints import discover_checkpoints, load_checkpoint
from lcsc.checkpoints.format import read_metadata
from lcsc.checkpoints.reader import read_step, weights_file
from lcsc.errors import CheckpointError, ConfigError
from lcsc.metrics.checkpoint_eval import CheckpointEval, check_counts
from lcsc.metrics.evaluate import evaluate_images, parse_metrics
from lcsc.models.diffusers_run import DiffusersEpsilonModel, check_weights_match
from lcsc.objectives.diffusers import default_space, diffusers_model, diffusers_objective
from lcsc.objectives.generative import GenerativeObjective

__all__ = ["diffusers_targets", "read_target", "diffusers_eval_objective", "evaluate_diffusers_checkpoints"]


def diffusers_targets(targets: list[str | Path]) -> list[Path]:
    """The checkpoints of ``targets`` in order: a run folder → its ``checkpoint-N/`` folders by step; a
    ``checkpoint-N/``, UNet or pipeline folder and a file → itself (:func:`lcsc.checkpoints.discover_checkpoints`
    names a path that is none of these)."""
    out: list[Path] = []
    for target in targets:
        found = discover_checkpoints(target)
        out += sorted(found, key=_folder_step) if len(found) > 1 else found
    return out


def _folder_step(path: Path) -> tuple[int, str]:
    try:
        return read_step(path, {})[0], path.name
    except CheckpointError:
        return -1, path.name


def _key_for(path: Path, key: str | None) -> str | None:
    """``key`` for the run's own checkpoints; None for a merge lcsc wrote (it holds the UNet's plain keys)."""
    if key is None:
        return None
    source = weights_file(path)
    if source.suffix == ".safetensors" and read_metadata(source).get("lcsc_merged") == "true":
        return None
    return key


def read_target(path: Path, model: DiffusersEpsilonModel, key: str | None = None
                ) -> tuple[dict[str, torch.Tensor], int | None]:
    """(the UNet weights of one target, its step or None); weights that do not fit ``model`` are a
    :class:`ConfigError` naming the target and the first mismatching tensor."""
    loaded = load_checkpoint(path, key=_key_for(path, key))
    check_weights_match(model, loaded.tensors, model.config.source, path)
    try:
        step: int | None = read_step(path, loaded.metadata)[0]
    except CheckpointError:  # a merge or folder named without a number: no step to show
        step = None
    return loaded.tensors, step


def diffusers_eval_objective(paths: list[Path], *, model_config: str | Path, reference: str | Path,
                             key: str | None = None, features: str | None = None, num_samples: int = 1000,
                             nfe: int | None = None, solver: str = "dpm-solver", seed: int = 0,
                             search_noise: bool = False, device: str | torch.device = "cpu",
                             progress: bool = False, autocast: str | None = None) -> GenerativeObjective:
    """The FD objective whose noise, sampler, features and reference the evaluation uses: the search's objective
    on ``seed`` (its ``--noise-seed``), held out unless ``search_noise``; its model is checked against every
    target."""
    check_counts(num_samples, nfe)
    model = diffusers_model(model_config, paths[0], _key_for(paths[0], key))
    for path in paths[1:]:  # every target is checked before anything is sampled
        read_target(path, model, key)
    space = features or default_space(model)
    objective = diffusers_objective(paths, f"fd-{space}", model_config=model_config, reference=reference,
                                    num_samples=num_samples, nfe=nfe, solver=solver, device=device, noise_seed=seed,
                                    progress=progress, model=model, autocast=autocast)
    return objective if search_noise else objective.held_out()


def evaluate_diffusers_checkpoints(paths: list[Path], *, model_config: str | Path, reference: str | Path,
                                   key: str | None = None, features: str | None = None, metrics="fd",
                                   num_samples: int = 1000, nfe: int | None = None, solver: str = "dpm-solver",
                                   seed: int = 0, search_noise: bool = False, device: str | torch.device = "cpu",
                                   progress: bool = False, autocast: str | None = None) -> list[CheckpointEval]:
    """Score each target's samples (the same noise for all: see the module docstring) against ``reference`` in
    ``features`` (default: Inception; FD_digits for 1×8×8 UNets)."""
    metrics = parse_metrics(metrics)
    objective = diffusers_eval_objective(paths, model_config=model_config, reference=reference, key=key,
                                         features=features, num_samples=num_samples, nfe=nfe, solver=solver,
                                         seed=seed, search_noise=search_noise, device=device, progress=progress,
                                         autocast=autocast)
    if "is" in metrics and not objective.features.has_logits:  # before sampling (evaluate_images would refuse)
        raise ConfigError(f"the IS analogue needs a classifier head; {objective.features.name!r} has none")
    if {"kid", "pr"} & set(metrics) and objective.reference.features.shape[0] < 2:
        raise ConfigError(f"--reference {reference}: holds only statistics (mu, sigma), so FD only; pass --metrics fd "
                          "or a folder (or .npz) of reference images for KID and precision/recall")
    results = []
    for path in paths:
        state, step = read_target(path, objective.model, key)
        images = objective.samples(state)
        result = evaluate_images(images, objective.reference, objective.features, metrics, progress=progress)
        results.append(CheckpointEval(path, step, result, images[:64]))
    return results
