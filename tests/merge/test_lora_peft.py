"""LoRA adapters saved by peft on a tiny diffusers UNet: the merge equals peft's own merges, and the concatenated
adapter loaded by peft gives the outputs of the merged full weights."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel  # a declared dev dependency (pyproject [dev]): missing, the tests fail, never skip

from lcsc.merge.lora import AdapterSet, add_delta, combine_deltas, concatenate_adapters, save_adapter
from tests.merge.lora_helpers import (
    TRICKY_SHAPES,
    make_peft_run,
    make_tricky_adapters,
    tiny_unet,
    tricky_model,
    unet_inputs,
)

A_COEFFS = np.array([-0.3, 0.8, 0.5])  # steps 100, 200, 300 of PEFT_SPECS


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora") / "run"
    return make_peft_run(folder), folder


def _outputs(model) -> torch.Tensor:
    with torch.no_grad():
        return model(*unet_inputs()).sample


def test_full_merge_equals_the_combination_of_peft_merged_models(run) -> None:
    base, folder = run
    aset = AdapterSet.open(folder)
    full = add_delta(base.state_dict(), combine_deltas(aset.adapters, A_COEFFS))
    merged_by_peft = [PeftModel.from_pretrained(copy.deepcopy(base), str(a.path)).merge_and_unload().state_dict()
                      for a in aset.adapters]
    assert set(merged_by_peft[0]) == set(full)
    for name, value in full.items():
        want = sum(float(a) * sd[name].double() for a, sd in zip(A_COEFFS, merged_by_peft))
        torch.testing.assert_close(value.double(), want, rtol=1e-5, atol=1e-6, msg=name)


def test_concatenated_adapter_loaded_by_peft_matches_full_weights(run, tmp_path: Path) -> None:
    base, folder = run
    aset = AdapterSet.open(folder)
    full = add_delta(base.state_dict(), combine_deltas(aset.adapters, A_COEFFS))
    plain = tiny_unet(1)
    plain.load_state_dict(full)
    tensors, config = concatenate_adapters(aset.adapters, A_COEFFS)
    assert config["r"] == 9 and config["rank_pattern"]  # to_q: 2 + 4 + 1 = 7
    out = save_adapter(tmp_path / "merged", tensors, config)
    with_adapter = PeftModel.from_pretrained(copy.deepcopy(base), str(out)).eval()
    got, want = _outputs(with_adapter), _outputs(plain)
    assert not torch.allclose(want, _outputs(base), atol=1e-3)  # the adapters do change the model
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    lora_ranks = {n: m.r["default"] for n, m in with_adapter.named_modules() if hasattr(m, "r")}
    assert set(lora_ranks.values()) == {7, 9}


def test_concatenated_adapter_with_colliding_module_names_loads_in_peft(tmp_path: Path) -> None:
    """conv_in / down.conv_in and blocks.0.attn.to_q / x.blocks.0.attn.to_q: peft gives every module the rank of
    its factors and the model's outputs are those of the merged full weights."""
    make_tricky_adapters(tmp_path / "run")
    aset = AdapterSet.open(tmp_path / "run")
    coeffs = np.array([0.7, 0.3])
    base = tricky_model()
    plain = tricky_model(1)
    plain.load_state_dict(add_delta(base.state_dict(), combine_deltas(aset.adapters, coeffs)))
    out = save_adapter(tmp_path / "merged", *concatenate_adapters(aset.adapters, coeffs))
    with_adapter = PeftModel.from_pretrained(copy.deepcopy(base), str(out)).eval()
    ranks = {n.removeprefix("base_model.model."): m.r["default"] for n, m in with_adapter.named_modules()
             if isinstance(getattr(m, "r", None), dict)}
    assert ranks == {"conv_in": 3, "blocks.0.attn.to_q": 5, "down.conv_in": 4, "blocks.0.attn.to_k": 4,
                     "x.blocks.0.attn.to_q": 4}
    assert set(ranks) == set(TRICKY_SHAPES)
    h = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got, before = plain(h), with_adapter(h), base(h)
    assert not torch.allclose(want, before, atol=1e-3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
