"""Synthetic LoRA files in diffusers' and kohya-ss' formats, with each one's ΔW computed by hand (float64)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from tests.merge.lora_helpers import explicit_delta

__all__ = ["ATTN", "SHAPES", "diffusers_keys", "kohya_name", "write_diffusers", "write_kohya"]

ATTN = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
SHAPES = {f"{ATTN}.to_q": (6, 5), f"{ATTN}.to_out.0": (5, 6), "down_blocks.0.resnets.0.conv1": (4, 3, 3, 3)}


def kohya_name(module: str) -> str:
    return "lora_unet_" + module.replace(".", "_")


def diffusers_keys(module: str, style: str, prefix: str = "unet.") -> tuple[str, str]:
    """(A key, B key): ``style`` "peft" (lora_A/B), "down" (lora.down/up) or "processor" (attn1.processor.to_q_lora
    .down; other modules fall back to lora.down)."""
    if style == "peft":
        return f"{prefix}{module}.lora_A.weight", f"{prefix}{module}.lora_B.weight"
    if style == "processor" and module.startswith(ATTN):
        proj = module.removeprefix(f"{ATTN}.").removesuffix(".0")
        stem = f"{prefix}{ATTN}.processor.{proj}_lora"
        return f"{stem}.down.weight", f"{stem}.up.weight"
    return f"{prefix}{module}.lora.down.weight", f"{prefix}{module}.lora.up.weight"


def _factors(shape: tuple, rank: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    A = torch.randn(rank, *shape[1:], generator=gen)
    B = torch.randn(shape[0], rank, *([1] * (len(shape) - 2)), generator=gen)
    return A, B


def write_diffusers(path: Path, ranks: dict[str, int], seed: int, *, style: str = "peft", prefix: str = "unet.",
                    alphas: dict[str, float] | None = None, config: dict | None = None,
                    shapes: dict[str, tuple] = SHAPES) -> dict[str, torch.Tensor]:
    """A diffusers LoRA file; ``alphas`` as ``<module>.alpha`` tensors, ``config`` as ``lora_adapter_metadata``
    (its scales are the test's business). Returns ΔW by hand with s = α/r (1 without α)."""
    gen, tensors, delta = torch.Generator().manual_seed(seed), {}, {}
    for module, shape in shapes.items():
        A, B = _factors(shape, ranks[module], gen)
        a_key, b_key = diffusers_keys(module, style, prefix)
        tensors[a_key], tensors[b_key] = A, B
        alpha = (alphas or {}).get(module)
        if alpha is not None:
            tensors[f"{prefix}{module}.alpha"] = torch.tensor(alpha)
        delta[f"{module}.weight"] = explicit_delta(A, B, alpha if alpha is not None else ranks[module], ranks[module])
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt"} | ({"lora_adapter_metadata": json.dumps(config)} if config else {})
    save_file(tensors, str(path), metadata=metadata)
    return delta


def write_kohya(path: Path, ranks: dict[str, int], seed: int, *, alphas: dict[str, float | None],
                metadata: dict[str, str] | None = None, shapes: dict[str, tuple] = SHAPES) -> dict[str, torch.Tensor]:
    """A kohya-ss LoRA file (``alphas[module]`` None: no alpha tensor). Returns ΔW by hand, keyed by kohya names, with
    s = α/r (α None or 0: s = 1)."""
    gen, tensors, delta = torch.Generator().manual_seed(seed), {}, {}
    for module, shape in shapes.items():
        A, B = _factors(shape, ranks[module], gen)
        name, alpha = kohya_name(module), alphas.get(module)
        tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"] = A, B
        if alpha is not None:
            tensors[f"{name}.alpha"] = torch.tensor(alpha, dtype=torch.float16)
        delta[f"{name}.weight"] = explicit_delta(A, B, alpha or ranks[module], ranks[module])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})
    return delta
