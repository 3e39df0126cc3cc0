"""diffusers and kohya LoRA files against diffusers' own reader: ``load_lora_weights`` then ``fuse_lora`` on a tiny
UNet gives base + our ΔW, for files diffusers writes and for the combined files lcsc writes.

diffusers' ``load_lora_weights`` / ``fuse_lora`` are methods of a pipeline; a real StableDiffusionPipeline needs a CLIP
text encoder and tokenizer, which cannot be built offline, so :class:`_UnetPipeline` is the least a pipeline holds
for them (its UNet, no text encoder): diffusers' own code reads, converts and fuses the files.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict  # peft: a declared dev dependency; missing, the tests fail

from lcsc.checkpoints.lora_formats import lora_kind, read_lora
from lcsc.merge.lora import AdapterSet
from lcsc.merge.lora_files import concatenate_lora_files, save_lora_file
from tests.checkpoints.lora_files_helpers import kohya_name, write_diffusers, write_kohya
from tests.merge.lora_helpers import tiny_unet

_ENDS = ("attn1.to_q.weight", "attn2.to_k.weight", "attn2.to_v.weight", "to_out.0.weight", "proj_in.weight",
         "conv1.weight")
A_COEFFS = np.array([0.7, -0.5, 0.8])


class _UnetPipeline(StableDiffusionLoraLoaderMixin):
    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet, self.text_encoder, self.hf_device_map, self.components = unet, None, None, {"unet": unet}


@pytest.fixture(scope="module")
def base():
    return tiny_unet(0)


def _shapes(base) -> dict[str, tuple]:
    return {k.removesuffix(".weight"): tuple(v.shape) for k, v in base.state_dict().items() if k.endswith(_ENDS)}


def _ranks(shapes: dict[str, tuple], k: int) -> dict[str, int]:
    return {m: 1 + (i * (k + 1)) % 3 + (k == 1) for i, m in enumerate(shapes)}  # 1…4; totals 4 or 7


def _diffusers_delta(base, path: Path) -> dict[str, torch.Tensor]:
    """ΔW = fused - base, by diffusers' load_lora_weights + fuse_lora, for every layer it adapted."""
    pipe = _UnetPipeline(copy.deepcopy(base))
    pipe.load_lora_weights(str(path))
    pipe.fuse_lora(components=["unet"])
    weights = base.state_dict()
    return {f"{n}.weight": m.get_base_layer().weight.detach().double() - weights[f"{n}.weight"].double()
            for n, m in pipe.unet.named_modules() if isinstance(m, BaseTunerLayer)}


def _close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want) and got
    for name in want:
        torch.testing.assert_close(got[name].double(), want[name].double(), rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("script", ["text_to_image_lora", "with_metadata"])
def test_files_diffusers_writes_read_as_diffusers_loads_them(base, tmp_path: Path, script: str) -> None:
    """As diffusers' train_text_to_image_lora saves (r = α, ``convert_state_dict_to_diffusers``: lora.down keys), and
    as its newer scripts do (peft keys, the LoraConfig as ``lora_adapter_metadata``: α ≠ r, a rank_pattern, conv)."""
    unet = copy.deepcopy(base)
    config = (LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                         init_lora_weights=False) if script == "text_to_image_lora" else
              LoraConfig(r=2, lora_alpha=6, rank_pattern={"to_k": 3}, target_modules=["to_q", "to_k", "conv1"],
                         init_lora_weights=False))
    unet.add_adapter(config)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.mul_(3.0)
    layers = get_peft_model_state_dict(unet)
    metadata = {}
    if script == "text_to_image_lora":
        layers = convert_state_dict_to_diffusers(layers)
    else:
        metadata = {"unet_lora_adapter_metadata": unet.peft_config["default"].to_dict()}
    folder = tmp_path / "checkpoint-10"
    StableDiffusionLoraLoaderMixin.save_lora_weights(folder, unet_lora_layers=layers, **metadata)
    assert lora_kind(folder) == "diffusers"
    ours = read_lora(folder).delta_state()
    if script == "text_to_image_lora":
        assert all(".lora.down.weight" in a for a, _ in read_lora(folder).keys.values())
    else:
        assert {m.scale for m in read_lora(folder).modules.values()} == {3.0, 2.0}  # 6/2; to_k: 6/3
    _close(ours, _diffusers_delta(base, folder / "pytorch_lora_weights.safetensors"))


def test_kohya_file_reads_as_diffusers_loads_it(base, tmp_path: Path) -> None:
    """Linear and 3×3 conv layers, ranks 1…3, one α for all (diffusers misreads per-module kohya alphas of
    attention layers: their network-alpha keys do not name the modules)."""
    shapes = _shapes(base)
    path = tmp_path / "style.safetensors"
    write_kohya(path, _ranks(shapes, 0), 0, alphas=dict.fromkeys(shapes, 3.0), shapes=shapes)
    names = {f"{kohya_name(m)}.weight": f"{m}.weight" for m in shapes}
    ours = {names[n]: d for n, d in read_lora(path).delta_state().items()}
    _close(ours, _diffusers_delta(base, path))


@pytest.mark.parametrize("fmt", ["diffusers", "kohya"])
def test_combined_file_loads_in_diffusers_as_the_weighted_sum(base, tmp_path: Path, fmt: str) -> None:
    """Three checkpoints of different ranks (per module, too): the file lcsc writes, loaded and fused by diffusers,
    gives base + Σ a_k ΔW_k with ΔW_k computed by hand. Its total ranks differ per module: diffusers' rule α = r
    (diffusers files) and the uniform α with ranks folded into B (kohya files) are both exercised."""
    shapes = _shapes(base)
    deltas = []
    for k in range(3):
        ranks = _ranks(shapes, k)
        if fmt == "diffusers":
            deltas.append(write_diffusers(tmp_path / "run" / f"lora-{k + 1}.safetensors", ranks, k, style="down",
                                          shapes=shapes))
        else:
            alphas = dict.fromkeys(shapes, [1.0, 8.0, None][k])
            hand = write_kohya(tmp_path / "run" / f"lora-{k + 1}.safetensors", ranks, k, alphas=alphas, shapes=shapes)
            deltas.append({f"{m}.weight": hand[f"{kohya_name(m)}.weight"] for m in shapes})
    aset = AdapterSet.open(tmp_path / "run")
    out = save_lora_file(tmp_path / "merged.safetensors", concatenate_lora_files(aset.adapters, A_COEFFS))
    assert lora_kind(out) == fmt and len({m.rank for m in read_lora(out).modules.values()}) > 1
    want = {name: sum(float(a) * d[name] for a, d in zip(A_COEFFS, deltas)) for name in deltas[0]}
    _close(_diffusers_delta(base, out), want)
