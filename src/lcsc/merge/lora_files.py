"""One diffusers or kohya LoRA file equal to Σₖ aₖΔWₖ (ranks concatenated), in the format of its inputs.

As for peft adapters (:func:`lcsc.merge.lora.concatenate_adapters`): A = [A₁; …; A_K] and B = [c·a₁s₁B₁ … c·a_Ks_KB_K]
per module, of rank R = Σₖrₖ, so that s·B·A = Σₖ aₖsₖBₖAₖ exactly. Each module keeps the key names of the first
input. diffusers files get no alpha tensors and no ``lora_adapter_metadata``: diffusers then scales every module by
1 (c = 1). kohya files get one ``.alpha`` for every module, the most common R, so that the file reads exactly both
in sd-scripts (s = α/R per module, folded in by c = R/α) and in diffusers (which takes a uniform α correctly).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from lcsc.atomic import atomic_path
from lcsc.checkpoints.lora import check_compatible
from lcsc.checkpoints.lora_files import KOHYA, LoraFile
from lcsc.errors import CheckpointError
from lcsc.merge.coefficients import Coefficients
from lcsc.merge.lora import coefficient_lookup

__all__ = ["concatenate_lora_files", "save_lora_file"]


def _kohya_alpha(ranks: dict[str, int]) -> int:
    counts = Counter(ranks.values())
    return max(counts, key=lambda rank: (counts[rank], rank))


def concatenate_lora_files(adapters: list[LoraFile], coeffs: Coefficients | Any) -> dict[str, torch.Tensor]:
    """The tensors of one LoRA file (the inputs' format) equal to Σₖ aₖΔWₖ; float32 factors. ``coeffs``: a vector
    or a :class:`Coefficients` (per-group values applied per module, as :func:`~lcsc.merge.lora.combine_deltas`)."""
    if not all(isinstance(a, LoraFile) for a in adapters) or len({a.format for a in adapters}) != 1:
        found = sorted({getattr(a, "format", "peft") for a in adapters})
        raise CheckpointError(f"LoRA files of one format (diffusers or kohya) combine into one file, not {found}")
    check_compatible(adapters)
    lookup = coefficient_lookup(coeffs, len(adapters))
    ref = adapters[0]
    ranks = {name: sum(a.modules[name].rank for a in adapters) for name in ref.modules}
    alpha = _kohya_alpha(ranks) if ref.format == KOHYA else None
    tensors: dict[str, torch.Tensor] = {}
    for name in ref.modules:
        mods = [a.modules[name] for a in adapters]
        fold = ranks[name] / alpha if alpha is not None else 1.0
        a_key, b_key = ref.keys[name]
        tensors[a_key] = torch.cat([m.A.to(torch.float32) for m in mods], dim=0).contiguous()
        tensors[b_key] = torch.cat([m.B.to(torch.float32) * float(a * m.scale * fold)
                                    for m, a in zip(mods, lookup(f"{name}.weight"))], dim=1).contiguous()
        if alpha is not None:
            tensors[f"{name}.alpha"] = torch.tensor(float(alpha))
    return tensors


def save_lora_file(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
                   ) -> Path:
    """Write ``tensors`` (from :func:`concatenate_lora_files`) as one ``.safetensors`` file, atomically."""
    path = Path(path)
    if path.suffix != ".safetensors" or path.is_dir():
        raise CheckpointError(f"{path}: a merged LoRA file must be a .safetensors file path")
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"format": "pt", **(metadata or {})})
    return path
