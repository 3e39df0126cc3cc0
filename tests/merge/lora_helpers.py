"""LoRA adapter folders for the tests: synthetic ones in peft's file format, and real ones saved by peft."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

__all__ = ["PEFT_SPECS", "TINY_UNET", "TRICKY_SHAPES", "explicit_delta", "make_peft_run", "make_tricky_adapters",
           "peft_adapter", "peft_rank", "tiny_unet", "tricky_model", "unet_inputs", "write_adapter"]

TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=8, norm_num_groups=4, attention_head_dim=2,
)  # fmt: skip
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
PEFT_SPECS = {  # step → LoraConfig arguments: different ranks, alphas, rsLoRA, rank and alpha patterns
    100: dict(r=2, lora_alpha=4),
    200: dict(r=4, lora_alpha=2, use_rslora=True),
    300: dict(r=3, lora_alpha=6, rank_pattern={"to_q": 1}, alpha_pattern={"to_k": 5}),
}


def write_adapter(folder: Path, factors: dict[str, tuple], config: dict, *, infix: str = "") -> Path:
    """``factors``: module → (A, B) or (A, B, bias); written as peft writes them (``base_model.model.`` keys)."""
    tensors = {}
    for name, parts in factors.items():
        key = f"base_model.model.{name}"
        tensors[f"{key}.lora_A{infix}.weight"] = parts[0].contiguous()
        tensors[f"{key}.lora_B{infix}.weight"] = parts[1].contiguous()
        if len(parts) > 2:
            tensors[f"{key}.lora_B{infix}.bias"] = parts[2].contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", **config}))
    return folder


def explicit_delta(A: torch.Tensor, B: torch.Tensor, alpha: float, r: int, *, rslora: bool = False,
                   fan_in_fan_out: bool = False) -> torch.Tensor:
    """ΔW = s·B·A written out independently of lcsc (einsum over the rank; conv kernels kept)."""
    scale = alpha / (math.sqrt(r) if rslora else r)
    product = torch.einsum("or,ri...->oi...", B.double().flatten(2).squeeze(-1) if B.dim() > 2 else B.double(),
                           A.double())
    return (product.T if fan_in_fan_out else product) * scale


def tiny_unet(seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**TINY_UNET).eval()


def unet_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 4, 8, 8, generator=gen), torch.tensor([10, 500]),
            torch.randn(2, 3, 8, generator=gen))


def peft_adapter(base, folder: Path, seed: int, **lora_kwargs) -> Path:
    """Save a random LoRA adapter of ``base`` with peft itself (``init_lora_weights=False``: B is not zero)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(target_modules=TARGETS, init_lora_weights=False, **lora_kwargs)
    model = get_peft_model(copy.deepcopy(base), config)
    with torch.no_grad():  # B·A of a kaiming init is small; scale B up so ΔW matters against W
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(3.0)
    model.save_pretrained(str(folder))
    return folder


def make_peft_run(folder: Path):
    """The base UNet and three peft adapters of it in folder/checkpoint-N (:data:`PEFT_SPECS`)."""
    base = tiny_unet(0)
    for seed, (step, kwargs) in enumerate(PEFT_SPECS.items()):
        peft_adapter(base, folder / f"checkpoint-{step}", seed=seed, **kwargs)
    return base


# How peft picks a module's r / lora_alpha from rank_pattern / alpha_pattern (first key whose regex matches the
# module's name, else the name itself looked up as a key), re-implemented here independently of lcsc:
# peft 0.10–0.14 (LoraModel._create_and_replace, then utils.other.get_pattern_key from PR #2195):
LEGACY_RULE = lambda key, name: re.match(rf".*\.{key}$", name)  # noqa: E731
# peft since PR #2419 (March 2025, "^" anchors work), e.g. the installed 0.21:
CURRENT_RULE = lambda key, name: re.match(rf"(.*\.)?({key})$", name)  # noqa: E731


def peft_rank(config: dict, name: str, rule, which: str = "rank_pattern") -> float:
    """The r (``which="alpha_pattern"``: lora_alpha) peft gives module ``name`` under ``rule``."""
    patterns = config.get(which) or {}
    key = next((k for k in patterns if rule(k, name)), name)
    return patterns.get(key, config["r" if which == "rank_pattern" else "lora_alpha"])


# Module names that trip up pattern keys: a top-level name that is also the last part of a nested one (conv_in,
# down.conv_in) and a full name that is a dotted suffix of another (blocks.0.attn.to_q, x.blocks.0.attn.to_q).
TRICKY_SHAPES = {"conv_in": (4, 4), "down.conv_in": (4, 4), "blocks.0.attn.to_q": (4, 4), "blocks.0.attn.to_k": (4, 4),
                 "x.blocks.0.attn.to_q": (4, 4)}
# Two adapters (r=2): the first gives conv_in rank 1 and blocks.0.attn.to_q rank 3 (anchored keys, which lcsc's
# reader resolves as current peft does). Concatenated: conv_in 3, blocks.0.attn.to_q 5, the other three 4.
TRICKY_SPECS = ({"r": 2, "lora_alpha": 3.0, "rank_pattern": {"^conv_in": 1, r"^blocks\.0\.attn\.to_q": 3}},
                {"r": 2, "lora_alpha": 2.0})


def make_tricky_adapters(folder: Path, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """:data:`TRICKY_SPECS` as folder/checkpoint-100, -200; returns each one's explicit ΔW (float64)."""
    gen = torch.Generator().manual_seed(seed)
    deltas = []
    for step, spec in zip((100, 200), TRICKY_SPECS):
        factors, delta = {}, {}
        for name, (out, inp) in TRICKY_SHAPES.items():
            rank = peft_rank(spec, name, CURRENT_RULE)
            A, B = torch.randn(rank, inp, generator=gen), torch.randn(out, rank, generator=gen)
            factors[name] = (A, B)
            delta[f"{name}.weight"] = explicit_delta(A, B, spec["lora_alpha"], rank)
        write_adapter(folder / f"checkpoint-{step}", factors, {**spec, "target_modules": sorted(TRICKY_SHAPES)})
        deltas.append(delta)
    return deltas


def tricky_model(seed: int = 0) -> torch.nn.Module:
    """A model whose Linear layers are named as :data:`TRICKY_SHAPES`; forward chains them all."""

    class Tricky(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name, (out, inp) in TRICKY_SHAPES.items():
                *parents, leaf = name.split(".")
                parent = self
                for part in parents:
                    if not hasattr(parent, part):
                        parent.add_module(part, torch.nn.Module())
                    parent = getattr(parent, part)
                parent.add_module(leaf, torch.nn.Linear(inp, out))

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            for name in TRICKY_SHAPES:
                h = torch.tanh(self.get_submodule(name)(h))
            return h

    torch.manual_seed(seed)
    return Tricky().eval()
