"""LCSC (Eq. 8) over LoRA adapters (Hu et al. 2021): ΔW = Σₖ aₖ(αₖ/rₖ)BₖAₖ exactly, as full weights or one adapter.

A linear combination of LoRA fine-tunes of one base model is a combination of their weight deltas: with Σa = 1,
Σₖ aₖ(W₀ + ΔWₖ) = W₀ + Σₖ aₖΔWₖ. It is never an average of the A and B factors (the product is not linear in them).
Two exact outputs: full weights W₀ + ΣₖaₖΔWₖ (:func:`combine_deltas` + :func:`add_delta`), or one peft adapter of
rank Σₖrₖ whose A stacks the Aₖ and whose B places the aₖsₖBₖ side by side, with scaling 1
(:func:`concatenate_adapters` + :func:`save_adapter`). For a search, :class:`~lcsc.checkpoints.CheckpointStack`
reads each adapter as its dense ΔW (see :mod:`lcsc.checkpoints.lora`); an objective then receives the merged ΔW,
which :func:`apply_delta` puts into a model.
"""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from lcsc.atomic import atomic_path, sha256_file, write_json
from lcsc.checkpoints.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, LoraAdapter, check_compatible
from lcsc.checkpoints.lora_formats import read_lora
from lcsc.checkpoints.reader import discover_checkpoints, read_step
from lcsc.errors import CheckpointError, CoefficientError
from lcsc.merge.coefficients import Coefficients
from lcsc.merge.lora_patterns import pattern_keys

__all__ = [
    "AdapterSet",
    "add_delta",
    "apply_delta",
    "coefficient_lookup",
    "combine_deltas",
    "concatenate_adapters",
    "save_adapter",
]

_DROPPED_CONFIG = ("layers_to_transform", "layers_pattern", "exclude_modules")  # target_modules lists every module


@dataclass
class AdapterSet:
    """K LoRA adapters of one base model in training-step order, validated to adapt the same layers."""

    adapters: list[LoraAdapter]
    steps: list[int]
    hashes: list[str]

    @property
    def K(self) -> int:  # noqa: N802 - the paper's symbol
        return len(self.adapters)

    @classmethod
    def open(cls, paths_or_dir: str | Path | list[str | Path]) -> AdapterSet:
        """Read LoRA checkpoints of one format (a folder of ``checkpoint-N/`` adapters or of LoRA files, or a list;
        see :mod:`lcsc.checkpoints.lora_formats`), ordered by step."""
        paths = discover_checkpoints(paths_or_dir)
        adapters = [read_lora(p) for p in paths]
        steps = [read_step(a.path, a.metadata)[0] for a in adapters]
        order = sorted(range(len(paths)), key=lambda k: steps[k])
        for a, b in zip(order, order[1:]):
            if steps[a] == steps[b]:
                raise CheckpointError(f"{paths[a]} and {paths[b]} both have step {steps[a]}")
        adapters = [adapters[k] for k in order]
        check_compatible(adapters)
        return cls(adapters, [steps[k] for k in order], [sha256_file(a.weights) for a in adapters])

    def provenance(self, coeffs: Coefficients) -> dict[str, str]:
        """Safetensors metadata recording what a merge of this set was made from."""
        return {"lcsc_merged": "true", "lcsc_steps": json.dumps(self.steps), "lcsc_hashes": json.dumps(self.hashes),
                "lcsc_coefficients": json.dumps(coeffs.to_json())}


def coefficient_lookup(coeffs: Coefficients | Any, K: int) -> Callable[[str], np.ndarray]:
    """``name → (K,) coefficients``: one vector for every tensor, or per group (first matching glob, as in
    :class:`~lcsc.merge.GroupPlan`) for a :class:`Coefficients` with groups. Names are base weight names."""
    groups = coeffs.groups if isinstance(coeffs, Coefficients) else None
    values = coeffs.values if isinstance(coeffs, Coefficients) else np.asarray(coeffs, dtype=np.float64).reshape(1, -1)
    if values.shape[1] != K or not np.isfinite(values).all():
        raise CoefficientError(f"coefficients of shape {values.shape[1:]} (finite) do not fit K={K} adapters")
    if groups is None:
        return lambda name: values[0]
    names = list(groups)

    def lookup(name: str) -> np.ndarray:
        for g, group in enumerate(names):
            if any(fnmatch.fnmatchcase(name, p) for p in groups[group]):
                return values[g]
        raise CoefficientError(f"parameter {name!r} matches no group glob ({', '.join(names)}); add a catch-all ['*']")

    return lookup


def combine_deltas(adapters: list[LoraAdapter], coeffs: Coefficients | Any) -> dict[str, torch.Tensor]:
    """Σₖ aₖ·ΔWₖ per adapted layer (float32), keyed by the base weight names; one adapter's ΔW in memory at a time."""
    check_compatible(adapters)
    lookup = coefficient_lookup(coeffs, len(adapters))
    out: dict[str, torch.Tensor] = {}
    for k, adapter in enumerate(adapters):
        for name, delta in adapter.delta_state().items():
            term = delta * float(lookup(name)[k])
            out[name] = out[name] + term if name in out else term
    return out


def add_delta(
    base: Mapping[str, torch.Tensor], delta: Mapping[str, torch.Tensor], source: str | Path = "base weights"
) -> dict[str, torch.Tensor]:
    """Full weights: ``base`` with ``base[name] + delta[name]`` for every adapted tensor (added in float32, kept in
    the base's dtype). A tensor missing from ``base`` or of another shape is an error naming ``source``."""
    out = dict(base)
    for name, d in delta.items():
        w = base.get(name)
        if w is None:
            raise CheckpointError(f"{source}: has no tensor {name!r}, which the adapters change (not their base model?)")
        if tuple(w.shape) != tuple(d.shape) or not w.is_floating_point():
            raise CheckpointError(f"{source}: tensor {name!r} is {tuple(w.shape)} {w.dtype}; the adapters' ΔW is "
                                  f"{tuple(d.shape)} (not their base model?)")
        out[name] = (w.to(torch.float32) + d.to(w.device, torch.float32)).to(w.dtype)
    return out


def apply_delta(
    model: torch.nn.Module, delta: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor] | None = None
) -> torch.nn.Module:
    """Put a merged ΔW (what a search objective over adapters receives) into a plain model, in place.

    Each adapted weight becomes ``base[name] + delta[name]``; other weights are left as they are. Pass ``base``
    (e.g. ``{k: v.clone() for k, v in model.state_dict().items()}``, taken once before the first call) when one
    model scores many candidates; without it ΔW is added to the model's current weights.
    """
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    with torch.no_grad():
        for name, d in delta.items():
            target = tensors.get(name)
            if target is None or tuple(target.shape) != tuple(d.shape):
                found = "no such tensor" if target is None else f"shape {tuple(target.shape)}"
                raise CheckpointError(f"model: cannot apply ΔW {name!r} {tuple(d.shape)} ({found})")
            origin = base[name] if base is not None else target
            target.copy_(origin.to(target.device, torch.float32) + d.to(target.device, torch.float32))
    return model


def concatenate_adapters(
    adapters: list[LoraAdapter], coeffs: Coefficients | Any
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One peft adapter equal to Σₖ aₖΔWₖ: A = [A₁; …; A_K], B = [a₁s₁B₁ … a_Ks_KB_K], lora_alpha = r = Σₖrₖ.

    Returns (tensors, config) for :func:`save_adapter`. The factors are float32; the config is the first adapter's,
    with ``use_rslora`` off and scaling 1 everywhere (``rank_pattern`` = ``alpha_pattern`` for modules whose total
    rank differs from ``r``, keyed so that every peft release selects exactly that module: see
    :mod:`lcsc.merge.lora_patterns`) and ``target_modules`` listing the adapted modules.
    """
    check_compatible(adapters)
    lookup = coefficient_lookup(coeffs, len(adapters))
    tensors: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    for name, ref in adapters[0].modules.items():
        mods = [a.modules[name] for a in adapters]
        a_w, key = lookup(f"{name}.weight"), f"{ref.prefix}{name}"
        tensors[f"{key}.lora_A.weight"] = torch.cat([m.A.to(torch.float32) for m in mods], dim=0).contiguous()
        tensors[f"{key}.lora_B.weight"] = torch.cat(
            [m.B.to(torch.float32) * float(a * m.scale) for m, a in zip(mods, a_w)], dim=1).contiguous()
        if ref.bias is not None:
            a_b = lookup(f"{name}.bias")
            tensors[f"{key}.lora_B.bias"] = sum(m.bias.to(torch.float32) * float(a * m.scale)
                                                for m, a in zip(mods, a_b))
        ranks[name] = sum(m.rank for m in mods)
    return tensors, _concatenated_config(adapters[0].config, ranks)


def _concatenated_config(source: dict[str, Any], ranks: dict[str, int]) -> dict[str, Any]:
    counts = Counter(ranks.values())
    r = max(counts, key=lambda rank: (counts[rank], rank))
    pattern = pattern_keys(ranks, r)
    config = dict(source)
    config.update(r=r, lora_alpha=r, use_rslora=False, rank_pattern=pattern, alpha_pattern=dict(pattern),
                  target_modules=sorted(ranks), init_lora_weights=True, inference_mode=True)
    for name in _DROPPED_CONFIG:
        if name in config:
            config[name] = None
    return config


def save_adapter(
    folder: str | Path, tensors: dict[str, torch.Tensor], config: dict[str, Any],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``adapter_model.safetensors`` then ``adapter_config.json`` into ``folder``, each atomically (a reader
    sees whole files; other files in the folder are kept). Returns the folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: is a file; the adapter output must be a folder")
    with atomic_path(folder / ADAPTER_WEIGHTS[0], suffix=".safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"format": "pt", **(metadata or {})})
    write_json(folder / ADAPTER_CONFIG, config)
    return folder
