"""`lcsc merge` / `lcsc search` on a folder of peft LoRA adapters (checkpoint-N/adapter_model.safetensors)."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel  # a declared dev dependency (pyproject [dev]): missing, the tests fail, never skip
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lcsc.cli.main import main
from tests.faults import tree_snapshot
from tests.merge.lora_helpers import make_peft_run, tiny_unet, unet_inputs, write_adapter
from tests.output import problem_lines

COEFFS = {"steps": [100, 200, 300], "coefficients": [0.6, -0.2, 0.6]}
OBJECTIVE = '''
import torch

def score(delta):
    assert all(name.endswith((".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight")) for name in delta)
    return float(sum(d.double().pow(2).sum() for d in delta.values()))
'''


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_cli")
    base = make_peft_run(root / "run")
    base.save_pretrained(str(root / "base"))  # a diffusers model folder as --base
    (root / "coeffs.json").write_text(json.dumps(COEFFS))
    return base, root


def _outputs(model) -> torch.Tensor:
    with torch.no_grad():
        return model(*unet_inputs()).sample


def test_merge_writes_full_weights_and_an_adapter_that_agree(lora_run, tmp_path: Path, capsys) -> None:
    base, root = lora_run
    full, adapter = tmp_path / "merged.safetensors", tmp_path / "merged_lora"
    code = main(["merge", str(root / "run"), "--coeffs", str(root / "coeffs.json"), "--base", str(root / "base"),
                 "-o", str(full), "--adapter-out", str(adapter)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "merged 3 LoRA adapters" in capsys.readouterr().out
    with safe_open(str(full), framework="pt") as fh:
        assert json.loads(fh.metadata()["lcsc_steps"]) == [100, 200, 300]
    plain = tiny_unet(1)
    plain.load_state_dict(load_file(str(full)))
    with_adapter = PeftModel.from_pretrained(copy.deepcopy(base), str(adapter)).eval()
    torch.testing.assert_close(_outputs(with_adapter), _outputs(plain), rtol=1e-4, atol=1e-5)
    assert (tmp_path / "merged.config.json").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["lora_alpha"] == 9


def test_adapter_out_alone(lora_run, tmp_path: Path) -> None:
    _, root = lora_run
    adapter = tmp_path / "out"
    assert main(["merge", str(root / "run"), "--coeffs", str(root / "coeffs.json"), "--adapter-out", str(adapter)]) == 0
    assert {p.name for p in adapter.iterdir()} == {"adapter_model.safetensors", "adapter_config.json",
                                                   "lcsc_merge.config.json"}


@pytest.mark.parametrize("extra,match", [
    (["-o", "x.safetensors"], "needs --base BASE_WEIGHTS"),
    ([], r"give -o OUTPUT.safetensors \(with --base\) or --adapter-out DIR"),
    (["--base", "nowhere", "-o", "x.safetensors"], "--base nowhere: no such file or folder"),
])  # fmt: skip
def test_merge_option_errors(lora_run, tmp_path: Path, capsys, extra: list, match: str) -> None:
    _, root = lora_run
    extra = [str(tmp_path / e) if e.endswith(".safetensors") else e for e in extra]
    before = tree_snapshot(tmp_path, root)
    assert main(["merge", str(root / "run"), "--coeffs", str(root / "coeffs.json"), *extra]) == 2
    err = capsys.readouterr().err
    assert len(problem_lines(err)) == 1 and re.search(match, err), err
    assert tree_snapshot(tmp_path, root) == before


def _broken_copy(root: Path, tmp_path: Path, what: str) -> Path:
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    folder = run / "checkpoint-200"
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    config = json.loads((folder / "adapter_config.json").read_text())
    key = "base_model.model.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k"
    factors = {k[: -len(".lora_A.weight")]: (v, tensors[k.replace("lora_A", "lora_B")])
               for k, v in tensors.items() if k.endswith("lora_A.weight")}
    factors = {k.removeprefix("base_model.model."): v for k, v in factors.items()}
    name = key.removeprefix("base_model.model.")
    if what == "rank":
        factors[name] = (factors[name][0], torch.zeros(factors[name][1].shape[0], 5))
    else:
        del factors[name]
    write_adapter(folder, factors, config)
    return run


@pytest.mark.parametrize("what,match", [
    ("rank", r"checkpoint-200: module 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k': inconsistent "
             r"rank"),
    ("targets", r"checkpoint-200: LoRA adapter targets other modules than .*checkpoint-100: lacks 1 module\(s\) such "
                r"as \['down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k'\]"),
])  # fmt: skip
def test_merge_refuses_bad_adapters(lora_run, tmp_path: Path, capsys, what: str, match: str) -> None:
    _, root = lora_run
    run = _broken_copy(root, tmp_path, what)
    out = tmp_path / "out"
    before = tree_snapshot(tmp_path)
    assert main(["merge", str(run), "--coeffs", str(root / "coeffs.json"), "--adapter-out", str(out)]) == 2
    err = capsys.readouterr().err
    assert problem_lines(err)[0].startswith("lcsc merge: error: ") and len(problem_lines(err)) == 1
    assert re.search(match, err), err
    assert tree_snapshot(tmp_path) == before  # no output, no (empty) .lcsc-cache in the broken run


def test_search_over_adapters_with_a_user_objective(lora_run, tmp_path: Path, capsys) -> None:
    _, root = lora_run
    objective = tmp_path / "objective.py"
    objective.write_text(OBJECTIVE)
    out = tmp_path / "search"
    code = main(["search", str(root / "run"), "--objective", f"{objective}:score", "--evals", "6", "--no-cache",
                 "-o", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with safe_open(str(out / "merged.safetensors"), framework="pt") as fh:
        assert fh.metadata()["lcsc_lora_delta"] == "true"
    best = out / "best_coefficients.json"
    assert main(["merge", str(root / "run"), "--coeffs", str(best), "--adapter-out",
                 str(tmp_path / "best_lora")]) == 0  # fmt: skip
    before = tree_snapshot(tmp_path, root)
    assert main(["search", str(root / "run"), "--objective", "fd", "-o", str(tmp_path / "s2")]) == 2
    assert "LoRA adapters need a user objective" in capsys.readouterr().err
    assert tree_snapshot(tmp_path, root) == before


def test_wrong_base_is_refused_before_anything_is_written(lora_run, tmp_path: Path, capsys) -> None:
    _, root = lora_run
    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv_in.weight": torch.zeros(8, 4, 3, 3)}, str(wrong))
    full, adapter = tmp_path / "merged.safetensors", tmp_path / "merged_lora"
    before = tree_snapshot(tmp_path, root)
    assert main(["merge", str(root / "run"), "--coeffs", str(root / "coeffs.json"), "--base", str(wrong),
                 "-o", str(full), "--adapter-out", str(adapter)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "wrong.safetensors: has no tensor 'down_blocks." in err and "not their base model?" in err
    assert tree_snapshot(tmp_path, root) == before
