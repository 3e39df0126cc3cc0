"""LoRA adapter folders for the tests: synthetic ones in peft's file format, and real ones saved by peft."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

__all__ = ["PEFT_SPECS", "TINY_UNET", "explicit_delta", "make_peft_run", "peft_adapter", "tiny_unet", "unet_inputs",
           "write_adapter"]

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
