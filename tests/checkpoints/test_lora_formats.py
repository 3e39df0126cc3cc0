"""LoRA files as trainers write them (diffusers, kohya-ss): exact ΔW against hand-computed sums, runs of them,
the combined file in the inputs' format, detection (one format per run; full checkpoints stay full)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from lcsc.checkpoints import CheckpointStack, discover_checkpoints, load_checkpoint, read_step
from lcsc.checkpoints.lora_formats import lora_kind, read_lora
from lcsc.errors import CheckpointError
from lcsc.merge import Coefficients, merge
from lcsc.merge.lora import AdapterSet, combine_deltas
from lcsc.merge.lora_files import concatenate_lora_files, save_lora_file
from tests.checkpoints.lora_files_helpers import (
    SHAPES,
    diffusers_keys,
    kohya_name,
    write_diffusers,
    write_kohya,
)
from tests.merge.lora_helpers import write_adapter

Q, OUT, CONV = list(SHAPES)
A_COEFFS = np.array([-0.4, 0.9, 0.5])
RANKS = [{Q: 2, OUT: 2, CONV: 3}, {Q: 4, OUT: 1, CONV: 3}, {Q: 1, OUT: 2, CONV: 2}]  # differ per module and run


def _close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name].double(), want[name].double(), rtol=1e-5, atol=1e-5, msg=name)


def _sum(deltas: list[dict[str, torch.Tensor]], a) -> dict[str, torch.Tensor]:
    return {name: sum(float(ak) * d[name] for ak, d in zip(a, deltas)) for name in deltas[0]}


@pytest.mark.parametrize("style", ["peft", "down", "processor"])
@pytest.mark.parametrize("prefix", ["unet.", ""])
def test_diffusers_file_reads_as_exact_delta(tmp_path: Path, style: str, prefix: str) -> None:
    path = tmp_path / "pytorch_lora_weights.safetensors"
    want = write_diffusers(path, RANKS[0], 0, style=style, prefix=prefix, alphas={CONV: 6.0})  # conv: s = 6/3
    assert lora_kind(path) == "diffusers"
    adapter = read_lora(path)
    assert adapter.modules[CONV].scale == 2.0 and adapter.modules[Q].scale == 1.0
    _close(adapter.delta_state(), want)  # names: the module paths, without unet.; to_out_lora → to_out.0
    assert adapter.keys[OUT] == diffusers_keys(OUT, style, prefix)
    assert adapter.delta_state()[f"{CONV}.weight"].shape == (4, 3, 3, 3)


def test_kohya_file_reads_as_exact_delta(tmp_path: Path) -> None:
    path = tmp_path / "style-000002.safetensors"
    # α = 4 with r = 2: s = 2; no α: s = 1; α = 0: s = 1 (sd-scripts)
    want = write_kohya(path, RANKS[0], 0, alphas={Q: 4.0, OUT: None, CONV: 0.0}, metadata={"ss_steps": "700"})
    assert lora_kind(path) == "kohya"
    adapter = read_lora(path)
    assert [adapter.modules[kohya_name(m)].scale for m in (Q, OUT, CONV)] == [2.0, 1.0, 1.0]
    _close(adapter.delta_state(), want)
    assert set(want) == {f"{kohya_name(m)}.weight" for m in SHAPES}
    assert read_step(path, adapter.metadata) == (700, "metadata")  # sd-scripts' ss_steps, not the epoch in the name
    loaded = load_checkpoint(path)
    assert loaded.metadata["lcsc_lora_delta"] == "true"
    _close(loaded.tensors, want)


def test_lora_adapter_metadata_gives_the_scales(tmp_path: Path) -> None:
    """diffusers' ``save_lora_weights(..., unet_lora_adapter_metadata=LoraConfig)``: peft's rules for r and α."""
    config = {"unet.r": 2, "unet.lora_alpha": 8, "unet.rank_pattern": {"conv1": 3}, "unet.alpha_pattern": {
        "to_out.0": 3}, "unet.use_rslora": False, "unet.target_modules": ["to_q", "to_out.0", "conv1"]}
    path = tmp_path / "lora.safetensors"
    delta = write_diffusers(path, RANKS[0], 1, style="down", config=config)  # by hand below: s = α/r from config
    scales = {Q: 8 / 2, OUT: 3 / 2, CONV: 8 / 3}
    _close(read_lora(path).delta_state(), {n: d * scales[n.removesuffix(".weight")] for n, d in delta.items()})
    write_diffusers(path, RANKS[1], 1, config=config)
    with pytest.raises(CheckpointError, match=r"module '.*attn1\.to_out\.0': the factors have rank 1 "
                                              r"but lora_adapter_metadata gives r=2"):
        read_lora(path)
    write_diffusers(path, RANKS[0], 1, config=config, alphas={Q: 2.0})
    with pytest.raises(CheckpointError, match="has an alpha tensor and lora_adapter_metadata gives its LoraConfig"):
        read_lora(path)


def _diffusers_run(root: Path) -> list[dict[str, torch.Tensor]]:
    """checkpoint-N/ folders as diffusers' train_text_to_image_lora leaves them: the LoRA file beside accelerate's
    state (model.safetensors of the peft-wrapped UNet, optimizer.bin, random_states_0.pkl), and the final LoRA file
    in the run folder itself."""
    deltas = []
    for k, step in enumerate((100, 200, 300)):
        folder = root / f"checkpoint-{step}"
        deltas.append(write_diffusers(folder / "pytorch_lora_weights.safetensors", RANKS[k], k, style="down",
                                      alphas={CONV: 1.5 * (k + 1)}))
        save_file({f"{Q}.base_layer.weight": torch.zeros(6, 5), f"{Q}.lora_A.default.weight": torch.zeros(2, 5)},
                  str(folder / "model.safetensors"))
        (folder / "optimizer.bin").write_bytes(b"not loaded")
        (folder / "random_states_0.pkl").write_bytes(b"never unpickled")
    write_diffusers(root / "pytorch_lora_weights.safetensors", RANKS[2], 9)
    return deltas


def _kohya_run(root: Path) -> list[dict[str, torch.Tensor]]:
    """kohya files named by epoch; their ss_steps (100, 200, 300) are the steps."""
    alphas = [{Q: 1.0, OUT: 1.0, CONV: None}, {Q: 8.0, OUT: 8.0, CONV: 2.0}, {Q: 0.5, OUT: None, CONV: 3.0}]
    return [write_kohya(root / f"style-{k + 1:06d}.safetensors", RANKS[k], k, alphas=alphas[k],
                        metadata={"ss_steps": str(100 * (k + 1)), "ss_network_dim": "2"}) for k in range(3)]


@pytest.mark.parametrize("fmt", ["diffusers", "kohya"])
def test_runs_merge_exactly_and_the_combined_file_rereads(tmp_path: Path, fmt: str) -> None:
    run = tmp_path / "run"
    deltas = (_diffusers_run if fmt == "diffusers" else _kohya_run)(run)
    paths = discover_checkpoints(run)
    assert [lora_kind(p) for p in paths] == [fmt] * 3
    stack = CheckpointStack.open(run, cache=False, progress=False)
    assert stack.steps == [100, 200, 300]
    _close(merge(stack, A_COEFFS), _sum(deltas, A_COEFFS))
    aset = AdapterSet.open(run)
    _close(combine_deltas(aset.adapters, A_COEFFS), _sum(deltas, A_COEFFS))
    tensors = concatenate_lora_files(aset.adapters, A_COEFFS)
    out = save_lora_file(tmp_path / "merged.safetensors", tensors,
                         aset.provenance(Coefficients((100, 200, 300), A_COEFFS)))
    assert lora_kind(out) == fmt
    merged = read_lora(out)
    _close(merged.delta_state(), _sum(deltas, A_COEFFS))
    assert merged.keys == aset.adapters[0].keys  # the first input's key names
    assert {n: m.rank for n, m in merged.modules.items()} == {
        n: sum(a.modules[n].rank for a in aset.adapters) for n in merged.modules}  # 7, 5, 8: ranks concatenated
    alphas = {k: v.item() for k, v in load_file(str(out)).items() if k.endswith(".alpha")}
    assert alphas == ({} if fmt == "diffusers" else {f"{kohya_name(m)}.alpha": 8.0 for m in SHAPES})  # 7, 5, 8 → 8


def test_group_coefficients_in_the_combined_kohya_file(tmp_path: Path) -> None:
    deltas = _kohya_run(tmp_path / "run")
    values = np.array([[0.2, 0.3, 0.5], [1.5, -1.0, 0.5]])
    coeffs = Coefficients((100, 200, 300), values, {"attn": ("*_attn1_*",), "rest": ("*",)})
    want = {n: sum(float(a) * d[n] for a, d in zip(values[0 if "_attn1_" in n else 1], deltas)) for n in deltas[0]}
    aset = AdapterSet.open(tmp_path / "run")
    out = save_lora_file(tmp_path / "m.safetensors", concatenate_lora_files(aset.adapters, coeffs))
    _close(read_lora(out).delta_state(), want)


def test_one_format_per_run(tmp_path: Path) -> None:
    write_kohya(tmp_path / "a.safetensors", RANKS[0], 0, alphas={})
    write_adapter(tmp_path / "b", {Q: (torch.zeros(2, 5), torch.zeros(6, 2))}, {"r": 2, "lora_alpha": 2})
    with pytest.raises(CheckpointError, match=r"a\.safetensors is a kohya LoRA file, .*/b/ is a peft LoRA adapter "
                                              "folder: one LoRA format per run"):
        discover_checkpoints(tmp_path)
    (tmp_path / "b" / "adapter_model.safetensors").unlink()
    (tmp_path / "b" / "adapter_config.json").unlink()
    write_diffusers(tmp_path / "b" / "pytorch_lora_weights.safetensors", RANKS[0], 1)
    with pytest.raises(CheckpointError, match=r"a\.safetensors is a kohya LoRA file, .*/b/ is a diffusers LoRA file"):
        CheckpointStack.open(tmp_path, cache=False, progress=False)
    full = tmp_path / "w-1.pt"
    torch.save({"net.0.weight": torch.zeros(3, 3)}, full)
    with pytest.raises(CheckpointError, match=r"a\.safetensors is a kohya LoRA file but .*w-1\.pt is not"):
        discover_checkpoints([tmp_path / "a.safetensors", full])


def test_full_checkpoints_are_not_taken_for_lora(tmp_path: Path) -> None:
    """A plain state dict, accelerate's model.safetensors of a peft-wrapped UNet (LoRA and base layers) and lcsc's
    merged ΔW of kohya LoRAs (``lora_unet_….weight`` keys, flagged lcsc_lora_delta) are full checkpoints."""
    save_file({"net.0.weight": torch.ones(3, 3), "lora_proj.weight": torch.ones(3)}, str(tmp_path / "a-1.safetensors"))
    save_file({f"{Q}.base_layer.weight": torch.ones(6, 5), f"{Q}.lora_A.default.weight": torch.ones(2, 5)},
              str(tmp_path / "b-2.safetensors"))
    save_file({f"{kohya_name(Q)}.weight": torch.ones(6, 5)}, str(tmp_path / "c-3.safetensors"),
              metadata={"lcsc_lora_delta": "true"})
    paths = discover_checkpoints(tmp_path)
    assert [lora_kind(p) for p in paths] == [None, None, None]
    assert load_checkpoint(paths[0]).tensors["net.0.weight"].sum() == 9
    assert lora_kind(tmp_path) is None  # a folder of files, no pytorch_lora_weights.safetensors


@pytest.mark.parametrize("extra,match", [
    ({"lora_unet_x.lora_mid.weight": torch.ones(2, 2, 3, 3)}, r"tensor 'lora_unet_x\.lora_mid\.weight' is not a kohya "
                                                              r"LoRA factor .*Tucker \(lora_mid\)"),
    ({"lora_unet_x.hada_w1_a": torch.ones(2, 2)}, r"tensor 'lora_unet_x\.hada_w1_a' is not a kohya LoRA factor"),
    ({"lora_unet_y.lora_up.weight": torch.ones(4, 2)}, r"module 'lora_unet_y' has 'lora_unet_y\.lora_up\.weight' but "
                                                       r"no down/A factor"),
    ({"lora_unet_z.lora_down.weight": torch.ones(2, 3), "lora_unet_z.lora_up.weight": torch.ones(4, 3, 1)},
     r"module 'lora_unet_z': A \(2, 3\) and B \(4, 3, 1\) are not the factors"),
    ({"lora_unet_z.lora_down.weight": torch.ones(2, 3), "lora_unet_z.lora_up.weight": torch.ones(4, 3)},
     r"module 'lora_unet_z': inconsistent rank: A \(2, 3\) has rank 2, B \(4, 3\) has 3"),
    ({"lora_unet_z.lora_down.weight": torch.full((2, 3), float("nan")), "lora_unet_z.lora_up.weight": torch.ones(4, 2)},
     r"tensor 'lora_unet_z\.lora_down\.weight' holds NaN"),
])  # fmt: skip
def test_bad_kohya_files_are_refused_by_name(tmp_path: Path, extra: dict, match: str) -> None:
    path = tmp_path / "bad.safetensors"
    save_file({"lora_unet_ok.lora_down.weight": torch.ones(2, 3), "lora_unet_ok.lora_up.weight": torch.ones(4, 2),
               **extra}, str(path))
    assert lora_kind(path) == "kohya"
    with pytest.raises(CheckpointError, match=f"bad.safetensors: {match}"):
        read_lora(path)


def test_bad_diffusers_files_are_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    save_file({"unet.a.lora_A.weight": torch.ones(2, 3), "unet.a.lora_B.weight": torch.ones(4, 2),
               "unet.a.lora_magnitude_vector": torch.ones(4)}, str(path))
    with pytest.raises(CheckpointError, match=r"'unet\.a\.lora_magnitude_vector' is not a diffusers LoRA factor"):
        read_lora(path)
    save_file({"base_model.model.a.lora_A.weight": torch.ones(2, 3), "base_model.model.a.lora_B.weight":
               torch.ones(4, 2)}, str(path))
    with pytest.raises(CheckpointError, match="a peft adapter's weights; pass the adapter folder"):
        read_lora(path)
    folder = tmp_path / "checkpoint-5"
    folder.mkdir()
    (folder / "pytorch_lora_weights.safetensors").write_text(json.dumps({"not": "safetensors"}))
    assert lora_kind(folder) == "diffusers"  # named so: read, and refused with the file's name
    with pytest.raises(CheckpointError, match="checkpoint-5/pytorch_lora_weights.safetensors: not a diffusers or "
                                              "kohya LoRA file"):
        load_checkpoint(folder)


def test_modules_and_shapes_must_match_across_the_run(tmp_path: Path) -> None:
    write_kohya(tmp_path / "s-1.safetensors", RANKS[0], 0, alphas={})
    write_kohya(tmp_path / "s-2.safetensors", RANKS[1], 1, alphas={}, shapes={**SHAPES, CONV: (4, 3, 1, 1)})
    with pytest.raises(CheckpointError, match=r"s-2\.safetensors: module 'lora_unet_down_blocks_0_resnets_0_conv1' "
                                              r"adapts a \(4, 3, 1, 1\) weight"):
        AdapterSet.open(tmp_path)
