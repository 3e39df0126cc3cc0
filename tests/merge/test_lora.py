"""LoRA adapters: exact ΔW per layer, exact merges through the stack, the concatenated adapter, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack, discover_checkpoints, save_checkpoint
from lcsc.checkpoints.lora import read_adapter
from lcsc.errors import CheckpointError
from lcsc.merge import Coefficients, merge
from lcsc.merge.lora import (
    AdapterSet,
    add_delta,
    apply_delta,
    combine_deltas,
    concatenate_adapters,
    save_adapter,
)
from tests.merge.lora_helpers import (
    CURRENT_RULE,
    LEGACY_RULE,
    TRICKY_SHAPES,
    explicit_delta,
    make_tricky_adapters,
    peft_rank,
    write_adapter,
)

# module → (weight shape (out, in[, kh, kw]))
SHAPES = {"blocks.0.attn.to_q": (6, 5), "blocks.0.attn.to_out.0": (5, 6), "blocks.1.conv": (4, 3, 3, 3)}
# per adapter: r, alpha, rslora, rank_pattern, alpha_pattern, step
SPECS = [
    (2, 4.0, False, {}, {}, 100),
    (5, 3.0, True, {}, {}, 200),
    (3, 8.0, False, {"to_q": 1}, {"conv": 2.5}, 300),
]


def _factors(shape: tuple, r: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    out, rest = shape[0], shape[1:]
    A = torch.randn(r, *rest, generator=gen)
    B = torch.randn(out, r, *([1] * (len(rest) - 1)), generator=gen)
    return A, B


def _rank_alpha(name: str, r: int, alpha: float, rank_pattern: dict, alpha_pattern: dict) -> tuple[int, float]:
    r = next((v for k, v in rank_pattern.items() if name.endswith(k)), r)
    return r, next((v for k, v in alpha_pattern.items() if name.endswith(k)), alpha)


def make_adapters(folder: Path, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Three adapters of different ranks, alphas, rsLoRA and patterns under folder/checkpoint-N; returns each one's
    explicit ΔW (float64)."""
    gen = torch.Generator().manual_seed(seed)
    deltas = []
    for r, alpha, rslora, rank_pattern, alpha_pattern, step in SPECS:
        factors, delta = {}, {}
        for name, shape in SHAPES.items():
            rank, a = _rank_alpha(name, r, alpha, rank_pattern, alpha_pattern)
            factors[name] = _factors(shape, rank, gen)
            delta[f"{name}.weight"] = explicit_delta(*factors[name], a, rank, rslora=rslora)
        config = dict(r=r, lora_alpha=alpha, use_rslora=rslora, rank_pattern=rank_pattern, alpha_pattern=alpha_pattern,
                      target_modules=["to_q", "to_out.0", "conv"])
        write_adapter(folder / f"checkpoint-{step}", factors, config)
        deltas.append(delta)
    return deltas


def _combined(deltas: list[dict[str, torch.Tensor]], a) -> dict[str, torch.Tensor]:
    return {name: sum(float(ak) * d[name] for ak, d in zip(a, deltas)) for name in deltas[0]}


def _assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name].double(), want[name].double(), rtol=1e-5, atol=1e-5, msg=name)


A_COEFFS = np.array([-0.4, 0.9, 0.5])  # Σa = 1, one negative


def test_each_adapter_reads_as_its_exact_delta(tmp_path: Path) -> None:
    deltas = make_adapters(tmp_path)
    paths = discover_checkpoints(tmp_path)
    assert [p.name for p in paths] == ["checkpoint-100", "checkpoint-200", "checkpoint-300"]
    for path, want in zip(paths, deltas):
        _assert_close(read_adapter(path).delta_state(), want)


def test_stack_merge_of_adapters_is_exact(tmp_path: Path) -> None:
    deltas = make_adapters(tmp_path)
    stack = CheckpointStack.open(tmp_path, cache=False, progress=False)
    assert stack.steps == [100, 200, 300] and stack.metadata[0]["lcsc_lora_delta"] == "true"
    _assert_close(merge(stack, A_COEFFS), _combined(deltas, A_COEFFS))
    aset = AdapterSet.open(tmp_path)
    assert aset.steps == [100, 200, 300]
    _assert_close(combine_deltas(aset.adapters, A_COEFFS), _combined(deltas, A_COEFFS))


def test_stack_cache_notices_an_edited_adapter_config(tmp_path: Path) -> None:
    make_adapters(tmp_path)
    first = merge(CheckpointStack.open(tmp_path, progress=False), A_COEFFS)
    config = tmp_path / "checkpoint-100" / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "lora_alpha": 8.0}))
    again = CheckpointStack.open(tmp_path, progress=False)
    assert again.cache_state == "built"
    name = "blocks.0.attn.to_q.weight"
    assert not torch.allclose(merge(again, A_COEFFS)[name], first[name])


def test_concatenated_adapter_is_exact_and_rereads(tmp_path: Path) -> None:
    deltas = make_adapters(tmp_path / "run")
    aset = AdapterSet.open(tmp_path / "run")
    tensors, config = concatenate_adapters(aset.adapters, A_COEFFS)
    assert tensors["base_model.model.blocks.1.conv.lora_A.weight"].shape == (10, 3, 3, 3)
    # to_q has rank 1 in the third adapter: total 2 + 5 + 1 = 8; the others 2 + 5 + 3 = 10
    assert config["r"] == config["lora_alpha"] == 10 and not config["use_rslora"]
    assert config["target_modules"] == sorted(SHAPES)
    _assert_close(_by_hand(tensors, config), _combined(deltas, A_COEFFS))
    out = save_adapter(tmp_path / "merged", tensors, config, {"lcsc_steps": "[100, 200, 300]"})
    _assert_close(read_adapter(out).delta_state(), _combined(deltas, A_COEFFS))


def _by_hand(tensors: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """ΔW = (α/r)·B·A of every module of a written adapter, with r and α as peft resolves them (both rules must
    agree, and r must be the factors' rank), computed without lcsc's reader."""
    out = {}
    for key, A in tensors.items():
        if ".lora_A." not in key:
            continue
        name = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        ranks = {peft_rank(config, name, rule) for rule in (LEGACY_RULE, CURRENT_RULE)}
        alphas = {peft_rank(config, name, rule, "alpha_pattern") for rule in (LEGACY_RULE, CURRENT_RULE)}
        assert ranks == {A.shape[0]} and len(alphas) == 1, (name, ranks, alphas, A.shape)
        B = tensors[key.replace(".lora_A.", ".lora_B.")]
        out[f"{name}.weight"] = explicit_delta(A, B, alphas.pop(), ranks.pop())
    return out


def test_concatenated_pattern_keys_select_each_module_under_old_and_new_peft(tmp_path: Path) -> None:
    """A top-level module whose name ends a nested one, and a full name that is a dotted suffix of another: each
    module gets its own rank and α from the keys under the pattern rule of peft < 0.15 and of later releases."""
    deltas = make_tricky_adapters(tmp_path / "run")
    aset = AdapterSet.open(tmp_path / "run")
    coeffs = np.array([0.7, 0.3])
    tensors, config = concatenate_adapters(aset.adapters, coeffs)
    want = {"conv_in": 3, "blocks.0.attn.to_q": 5, "down.conv_in": 4, "blocks.0.attn.to_k": 4,
            "x.blocks.0.attn.to_q": 4}
    assert {n: tensors[f"base_model.model.{n}.lora_A.weight"].shape[0] for n in TRICKY_SHAPES} == want
    assert config["r"] == 4 and not any(k.startswith("^") for k in config["rank_pattern"])
    for name, rank in want.items():
        for rule in (LEGACY_RULE, CURRENT_RULE):
            assert peft_rank(config, name, rule) == rank, (name, rule)
            assert peft_rank(config, name, rule, "alpha_pattern") == rank, (name, rule)
    _assert_close(_by_hand(tensors, config), _combined(deltas, coeffs))
    out = save_adapter(tmp_path / "merged", tensors, config)
    _assert_close(read_adapter(out).delta_state(), _combined(deltas, coeffs))


def test_pattern_keys_refuse_a_top_level_name_no_key_can_select_alone() -> None:
    from lcsc.merge.lora_patterns import pattern_keys

    with pytest.raises(CheckpointError, match=r"module 'x\.aab': .*legacy peft rule \(it would get 3, not rank 4\)"):
        pattern_keys({"a+b": 3, "x.aab": 4, "c": 4}, 4)  # the key "a+b" is a regex matching "aab"


def test_group_coefficients_apply_per_layer(tmp_path: Path) -> None:
    deltas = make_adapters(tmp_path)
    groups = {"attn": ("blocks.0.*",), "rest": ("*",)}
    values = np.array([[0.2, 0.3, 0.5], [1.5, -1.0, 0.5]])
    coeffs = Coefficients((100, 200, 300), values, groups)
    want = {n: sum(float(a) * d[n] for a, d in zip(values[0 if n.startswith("blocks.0.") else 1], deltas))
            for n in deltas[0]}
    aset = AdapterSet.open(tmp_path)
    _assert_close(combine_deltas(aset.adapters, coeffs), want)
    tensors, config = concatenate_adapters(aset.adapters, coeffs)
    save_adapter(tmp_path / "out", tensors, config)
    _assert_close(read_adapter(tmp_path / "out").delta_state(), want)


def test_fan_in_fan_out_bias_and_adapter_name_infix(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    A, B, bias = torch.randn(2, 7, generator=gen), torch.randn(4, 2, generator=gen), torch.randn(4, generator=gen)
    folder = write_adapter(tmp_path / "a", {"h.0.c_attn": (A, B, bias)},
                           dict(r=2, lora_alpha=3, fan_in_fan_out=True, lora_bias=True), infix=".default")
    delta = read_adapter(folder).delta_state()
    _assert_close(delta, {"h.0.c_attn.weight": explicit_delta(A, B, 3, 2, fan_in_fan_out=True),
                          "h.0.c_attn.bias": bias.double() * 1.5})
    assert delta["h.0.c_attn.weight"].shape == (7, 4)  # GPT-2 Conv1D orientation


def test_add_delta_and_apply_delta(tmp_path: Path) -> None:
    deltas = make_adapters(tmp_path)
    net = torch.nn.Module()
    net.q = torch.nn.Linear(5, 6)
    base = {k: v.clone() for k, v in net.state_dict().items()}
    delta = {"q.weight": deltas[0]["blocks.0.attn.to_q.weight"].float()}
    full = add_delta(base, delta)
    torch.testing.assert_close(full["q.weight"], base["q.weight"] + delta["q.weight"])
    assert full["q.bias"] is base["q.bias"]
    for _ in range(2):  # with the base given, applying twice is idempotent
        apply_delta(net, delta, base)
    torch.testing.assert_close(net.q.weight.detach(), full["q.weight"])
    with pytest.raises(CheckpointError, match="'missing.weight'"):
        add_delta(base, {"missing.weight": torch.zeros(1)}, "base.safetensors")
    with pytest.raises(CheckpointError, match="cannot apply ΔW 'q.bias'"):
        apply_delta(net, {"q.bias": torch.zeros(3)})


def _break(folder: Path, what: str) -> None:
    gen = torch.Generator().manual_seed(0)
    A, B = torch.randn(2, 5, generator=gen), torch.randn(6, 2, generator=gen)
    factors = {"blocks.0.attn.to_q": (A, B), "blocks.0.attn.to_out.0": (torch.randn(2, 6), torch.randn(5, 2))}
    config = dict(r=2, lora_alpha=2)
    if what == "rank":
        factors["blocks.0.attn.to_q"] = (A, torch.randn(6, 3, generator=gen))
    elif what == "targets":
        factors["blocks.0.attn.to_v"] = factors.pop("blocks.0.attn.to_q")
    elif what == "declared":
        config["r"] = 4
    write_adapter(folder, factors, config)
    if what == "no_b":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(folder / "adapter_model.safetensors"))
        del tensors["base_model.model.blocks.0.attn.to_q.lora_B.weight"]
        save_file(tensors, str(folder / "adapter_model.safetensors"))
    elif what == "dora":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(folder / "adapter_model.safetensors"))
        tensors["base_model.model.blocks.0.attn.to_q.lora_magnitude_vector"] = torch.ones(6)
        save_file(tensors, str(folder / "adapter_model.safetensors"))
    elif what == "no_config":
        (folder / "adapter_config.json").unlink()


@pytest.mark.parametrize("what,match", [
    ("rank", r"checkpoint-200: module 'blocks.0.attn.to_q': inconsistent rank: lora_A \(2, 5\) has rank 2, "
             r"lora_B \(6, 3\) has 3"),
    ("targets", r"checkpoint-200: LoRA adapter targets other modules than .*checkpoint-100: lacks 1 module\(s\) "
                r"such as \['blocks.0.attn.to_q'\]; has 1 extra module\(s\) such as \['blocks.0.attn.to_v'\]"),
    ("declared", r"checkpoint-200: module 'blocks.0.attn.to_out.0': the factors have rank 2 but adapter_config.json "
                 "gives r=4"),
    ("no_b", r"checkpoint-200: module 'blocks.0.attn.to_q' has lora_A but no lora_B"),
    ("dora", r"checkpoint-200: tensor '.*lora_magnitude_vector' is not a LoRA A/B factor"),
    ("no_config", r"checkpoint-200: LoRA adapter folder has no adapter_config.json"),
])  # fmt: skip
def test_bad_adapters_are_refused_naming_folder_and_module(tmp_path: Path, what: str, match: str) -> None:
    _break(tmp_path / "checkpoint-100", "ok")
    _break(tmp_path / "checkpoint-200", what)
    with pytest.raises(CheckpointError, match=match):
        AdapterSet.open(tmp_path)
    with pytest.raises(CheckpointError, match="checkpoint-200"):
        CheckpointStack.open(tmp_path, cache=False, progress=False)


def test_adapters_and_full_checkpoints_do_not_mix(tmp_path: Path) -> None:
    make_adapters(tmp_path)
    full = save_checkpoint(tmp_path / "ckpt-400.safetensors", {"w": torch.zeros(2)}, step=400)
    with pytest.raises(CheckpointError, match="is a LoRA adapter folder but .*ckpt-400.safetensors is not"):
        CheckpointStack.open([tmp_path / "checkpoint-100", full], cache=False, progress=False)


def test_adapter_model_bin_is_read_weights_only(tmp_path: Path) -> None:
    make_adapters(tmp_path)
    folder = tmp_path / "checkpoint-100"
    want = read_adapter(folder).delta_state()
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "adapter_model.safetensors")), folder / "adapter_model.bin")
    (folder / "adapter_model.safetensors").unlink()
    _assert_close(read_adapter(folder).delta_state(), want)
    torch.save({"x": object()}, folder / "adapter_model.bin")
    with pytest.raises(CheckpointError, match="adapter_model.bin: refused"):
        read_adapter(folder)


def test_an_adapter_folder_is_an_anchor_row_of_exact_delta(tmp_path: Path) -> None:
    """LoRA runs take anchors too (e.g. an EMA of the adapter): its dense ΔW becomes one more row of the stack."""
    import shutil

    deltas = make_adapters(tmp_path / "run")
    shutil.move(str(tmp_path / "run" / "checkpoint-300"), str(tmp_path / "ema-adapter"))
    stack = CheckpointStack.open(tmp_path / "run", cache=False, progress=False)
    anchored = stack.with_anchors([("ema-adapter", tmp_path / "ema-adapter")])
    assert (anchored.K, anchored.K_window, anchored.anchors[0].name) == (3, 2, "ema-adapter")
    _assert_close(merge(anchored, A_COEFFS), _combined(deltas, A_COEFFS))
