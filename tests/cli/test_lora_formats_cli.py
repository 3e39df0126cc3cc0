"""`lcsc merge` on runs of diffusers and kohya LoRA files: --adapter-out writes one file of the inputs' format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lcsc.checkpoints.lora_formats import lora_kind, read_lora
from lcsc.cli.main import main
from tests.checkpoints.lora_files_helpers import SHAPES, write_diffusers, write_kohya
from tests.faults import tree_snapshot
from tests.merge.lora_helpers import tiny_unet, write_adapter
from tests.output import problem_lines

COEFFS = {"steps": [100, 200, 300], "coefficients": [0.6, -0.2, 0.6]}
UNET_MODULES = ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", "down_blocks.0.resnets.0.conv1")


def _run(root: Path, fmt: str, shapes: dict[str, tuple] = SHAPES) -> list[dict[str, torch.Tensor]]:
    (root / "coeffs.json").write_text(json.dumps(COEFFS))
    deltas = []
    for k, step in enumerate(COEFFS["steps"]):
        ranks = {m: 1 + (i + k) % 3 for i, m in enumerate(shapes)}
        if fmt == "diffusers":  # checkpoint-N/ folders of a diffusers LoRA training run
            deltas.append(write_diffusers(root / "run" / f"checkpoint-{step}" / "pytorch_lora_weights.safetensors",
                                          ranks, k, style="down", shapes=shapes))
        else:
            deltas.append(write_kohya(root / "run" / f"style-{k + 1:06d}.safetensors", ranks, k, alphas={},
                                      metadata={"ss_steps": str(step)}, shapes=shapes))
    return deltas


def _want(deltas: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {n: sum(a * d[n] for a, d in zip(COEFFS["coefficients"], deltas)) for n in deltas[0]}


@pytest.mark.parametrize("fmt", ["diffusers", "kohya"])
def test_adapter_out_writes_one_file_of_the_inputs_format(tmp_path: Path, capsys, fmt: str) -> None:
    want = _want(_run(tmp_path, fmt))
    out = tmp_path / "merged.safetensors"
    assert main(["merge", str(tmp_path / "run"), "--coeffs", str(tmp_path / "coeffs.json"), "--adapter-out",
                 str(out)]) == 0, capsys.readouterr().err  # fmt: skip
    assert f"merged 3 LoRA adapters (steps 100…300) into {fmt} LoRA file {out}" in capsys.readouterr().out
    assert lora_kind(out) == fmt and (tmp_path / "merged.config.json").is_file()
    got = read_lora(out).delta_state()
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name].double(), want[name], rtol=1e-5, atol=1e-5)


def test_diffusers_files_with_base_give_full_weights(tmp_path: Path) -> None:
    base = tiny_unet(0)
    base.save_pretrained(str(tmp_path / "base"))
    weights = base.state_dict()
    deltas = _run(tmp_path, "diffusers", {m: tuple(weights[f"{m}.weight"].shape) for m in UNET_MODULES})
    full = tmp_path / "full.safetensors"
    assert main(["merge", str(tmp_path / "run"), "--coeffs", str(tmp_path / "coeffs.json"), "--base",
                 str(tmp_path / "base"), "-o", str(full)]) == 0  # fmt: skip
    merged, want = load_file(str(full)), _want(deltas)
    for name, value in weights.items():
        expected = value.double() + want[name] if name in want else value.double()
        torch.testing.assert_close(merged[name].double(), expected, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("fmt,extra,match", [
    ("kohya", ["--adapter-out", "out_dir"], r"--adapter-out .*out_dir: kohya LoRA files merge into one \.safetensors "
                                            r"file"),
    ("kohya", ["--base", "base.safetensors", "-o", "full.safetensors"], r"--base: kohya LoRA module names"),
    ("mixed", ["--adapter-out", "m.safetensors"], r"run/peft/ is a peft LoRA adapter folder, .*run/style-000001\."
                                                  r"safetensors is a kohya LoRA file: one LoRA format per run"),
])  # fmt: skip
def test_merge_errors_are_one_line(tmp_path: Path, capsys, fmt: str, extra: list, match: str) -> None:
    _run(tmp_path, "kohya")
    if fmt == "mixed":
        write_adapter(tmp_path / "run" / "peft", {"x": (torch.ones(2, 3), torch.ones(4, 2))}, {"r": 2, "lora_alpha": 2})
    (tmp_path / "base.safetensors").write_bytes(b"")
    extra = [str(tmp_path / e) if "." in e or e.endswith("_dir") else e for e in extra]
    before = tree_snapshot(tmp_path)  # the run (inputs) and the output location
    assert main(["merge", str(tmp_path / "run"), "--coeffs", str(tmp_path / "coeffs.json"), *extra]) == 2
    err = capsys.readouterr().err
    assert problem_lines(err)[0].startswith("lcsc merge: error: ") and len(problem_lines(err)) == 1 and re.search(match, err), err
    assert tree_snapshot(tmp_path) == before
