# Built-in FD / FID / KID objectives for checkpoints of a diffusers UNet2DModel training run (no user code).
"""``diffusers_objective``: the built-in objectives of :mod:`lcsc.objectives.builtin` for a diffusers run.

The model comes from the UNet's ``config.json`` (and the pipeline's scheduler config, see
:mod:`lcsc.models.diffusers_run`), checked against the first checkpoint's tensors; the reference is a folder of
images, an ``.npz`` of images or an ``.npz`` of precomputed FID statistics (:func:`lcsc.metrics.reference_source.
load_reference`). Names are those of the built-ins: ``fid``, ``fd-SPACE``, ``kid[-SPACE]``, ``mean:A,B`` and ``auto``
(Inception FID; FD_digits + FD_digits2 for 1×8×8 models).
"""

from __future__ import annotations

from pathlib import Path

import torch

from lcsc.checkpoints import discover_checkpoints, load_checkpoint
from lcsc.errors import ConfigError
from lcsc.metrics.reference_source import load_reference
from lcsc.metrics.spaces import feature_space
from lcsc.models.diffusers_run import (
    DiffusersEpsilonModel,
    build_diffusers_model,
    check_weights_match,
    read_diffusers_config,
)
from lcsc.objectives.builtin import AUTO_DIGITS, combined_reduction, mean_terms, parse_builtin
from lcsc.objectives.combined import MeanObjective
from lcsc.objectives.cross_space import searched_spaces
from lcsc.objectives.generative import FDObjective, FIDObjective, GenerativeObjective, KIDObjective
from lcsc.progress import stage

__all__ = ["diffusers_model", "diffusers_objective", "diffusers_held_out", "default_space"]


def diffusers_model(model_config: str | Path, checkpoints: str | Path | list, key: str | None = None
                    ) -> DiffusersEpsilonModel:
    """The run's ε-model built from ``model_config``; a config that does not fit the first checkpoint's tensors is
    one :class:`ConfigError` naming the config file and the first mismatching key."""
    config = read_diffusers_config(model_config)
    first = discover_checkpoints(checkpoints)[0]
    with stage("model", f"UNet2DModel from {config.source}, checked against {first}"):
        model = build_diffusers_model(config)
        check_weights_match(model, load_checkpoint(first, key=key).tensors, config.source, first)
    return model


def default_space(model: DiffusersEpsilonModel) -> str:
    """``digits`` for 1×8×8 models (the digits feature nets' input), ``inception`` otherwise."""
    c = model.config
    return "digits" if (c.in_channels, c.resolution) == (1, 8) else "inception"


def _resolve(name: str, model: DiffusersEpsilonModel) -> str:
    if name.strip().lower() != "auto":
        return name
    return AUTO_DIGITS if default_space(model) == "digits" else "fid"


def _term(model: DiffusersEpsilonModel, name: str, reference: str | Path, kw: dict, progress: bool
          ) -> GenerativeObjective:
    spec = parse_builtin(name)
    space = spec.space or default_space(model)
    c = model.config
    if space != "inception" and (c.in_channels, c.resolution) != (1, 8):  # the digits nets take 1×8×8 images
        raise ConfigError(f"objective {name!r}: {space} features take 1×8×8 images but {c.source} makes "
                          f"{c.in_channels}×{c.resolution}×{c.resolution} ones; use fid or kid-inception")
    features = feature_space(space, kw["device"])
    ref = load_reference(reference, features, resolution=c.resolution, progress=progress)
    if spec.metric == "kid":
        if ref.features.shape[0] < 2:
            raise ConfigError(f"objective {name!r}: KID needs reference features, but {reference} holds only "
                              "statistics (mu, sigma); give a folder of images or use an FD objective")
        return KIDObjective(model, features, ref, name=f"kid_{space}", **kw)
    if space == "inception":
        return FIDObjective(model, features, ref, name="fid", **kw)
    return FDObjective(model, features, ref, name=f"fd_{space}", **kw)


def diffusers_objective(checkpoints: str | Path | list, name: str = "fid", *, model_config: str | Path,
                        reference: str | Path, key: str | None = None, num_samples: int = 1000,
                        nfe: int | None = None, solver: str = "dpm-solver", device: str | torch.device = "cpu",
                        noise_seed: int = 0, progress: bool = False, batched: bool = False,
                        model: DiffusersEpsilonModel | None = None, autocast: str | None = None
                        ) -> GenerativeObjective | MeanObjective:
    """Built-in objective ``name`` for the diffusers run whose checkpoints are ``checkpoints`` (``autocast="bf16"``:
    sample under bf16 autocast, see :mod:`lcsc.precision`)."""
    if batched:
        raise ConfigError("batched sampling (--batched-sampling) is not available for diffusers UNet2DModel runs: "
                          "torch.vmap cannot batch their GroupNorm layers; drop the flag")
    model = model if model is not None else diffusers_model(model_config, checkpoints, key)
    name = _resolve(name, model)
    kw = dict(num_samples=num_samples, nfe=nfe, solver=solver, device=device, noise_seed=noise_seed, batched=batched,
              autocast=autocast)
    terms = mean_terms(name)
    if terms is None:
        return _term(model, name, reference, kw, progress)
    objectives = [_term(model, t, reference, kw, progress) for t in terms]
    reduce = combined_reduction(name)
    return MeanObjective(objectives, name=f"{reduce}:" + ",".join(o.name for o in objectives), reduce=reduce)


def diffusers_held_out(checkpoints: str | Path | list, name: str, *, model_config: str | Path,
                       reference: str | Path, key: str | None = None, num_samples: int = 1000,
                       nfe: int | None = None, solver: str = "dpm-solver", device: str | torch.device = "cpu",
                       noise_seed: int = 0) -> dict[str, tuple[GenerativeObjective, bool]]:
    """space → (held-out FD objective, searched) for every space the objective ``name`` searched (what
    :func:`lcsc.objectives.cross_space.cross_space_report` scores)."""
    model = diffusers_model(model_config, checkpoints, key)
    spaces = dict.fromkeys(searched_spaces(_resolve(name, model), default_space(model)))
    out = {}
    for space in spaces:
        obj = diffusers_objective(checkpoints, f"fd-{space}", model_config=model_config, reference=reference,
                                  num_samples=num_samples, nfe=nfe, solver=solver, device=device,
                                  noise_seed=noise_seed, model=model)
        out[space] = (obj.held_out(), True)
    return out
