from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lcsc.checkpoints import CheckpointStack, load_checkpoint, read_step
from lcsc.errors import CheckpointError
from lcsc.training.state import load_train_state
from tests.conftest import make_states, write_states
from tests.faults import tree_snapshot
from tests.output import problem_lines


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pt_wrappers_and_prefixes(tmp_path: Path, states) -> None:
    sd = states[0]
    torch.save({"model": {f"module._orig_mod.{k}": v for k, v in sd.items()}, "step": 7}, tmp_path / "a.pt")
    ck = load_checkpoint(tmp_path / "a.pt")
    assert _equal(ck.tensors, sd)
    assert read_step(tmp_path / "a.pt", ck.metadata) == (7, "metadata")


def test_ambiguous_wrapper_needs_key(tmp_path: Path, states) -> None:
    torch.save({"model": states[0], "ema": states[1]}, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="several state dicts"):
        load_checkpoint(tmp_path / "b.pth")
    assert _equal(load_checkpoint(tmp_path / "b.pth", key="ema").tensors, states[1])


def test_safetensors_key_prefix(tmp_path: Path, states) -> None:
    save_file(
        {**{f"ema.{k}": v for k, v in states[1].items()}, "other.x": torch.zeros(2)},
        str(tmp_path / "c.safetensors"),
    )
    assert _equal(load_checkpoint(tmp_path / "c.safetensors", key="ema").tensors, states[1])


def test_diffusers_folders_open_as_stack(tmp_path: Path, states) -> None:
    for k, sd in enumerate(states[:3]):
        folder = tmp_path / "run" / f"checkpoint-{(k + 1) * 50}" / "unet"
        folder.mkdir(parents=True)
        save_file(sd, str(folder / "diffusion_pytorch_model.safetensors"))
    stack = CheckpointStack.open([tmp_path / "run" / f"checkpoint-{s}" for s in (150, 50, 100)], cache=False)
    assert stack.steps == [50, 100, 150]
    assert set(stack.step_origins) == {"filename"}


def test_steps_from_filename_and_metadata_order(tmp_path: Path) -> None:
    sts = make_states(3)
    # file names say 1,2,3 but metadata says the opposite order: metadata wins and rows follow it
    for name, step, sd in zip(["ckpt-1", "ckpt-2", "ckpt-3"], [30, 20, 10], sts):
        save_file(sd, str(tmp_path / f"{name}.safetensors"), metadata={"step": str(step)})
    for cache in (False, True):
        stack = CheckpointStack.open(tmp_path, cache=cache, progress=False)
        assert stack.steps == [10, 20, 30]
        assert _equal(stack.checkpoint(0), sts[2]) and _equal(stack.checkpoint(2), sts[0])


def test_pt_without_step_uses_filename(tmp_path: Path, states) -> None:
    torch.save(states[0], tmp_path / "epoch_12.pt")
    ck = load_checkpoint(tmp_path / "epoch_12.pt")
    assert read_step(tmp_path / "epoch_12.pt", ck.metadata) == (12, "filename")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('LCSC_TEST_MARKER', '/tmp/lcsc-marker')}",))


def test_code_running_pickle_is_refused(tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("LCSC_TEST_MARKER", str(marker))
    torch.save({"weight": torch.zeros(2), "evil": _Evil()}, tmp_path / "evil.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning reaches the user either
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and "Weights only load failed" not in message
    assert message.startswith(f"{tmp_path / 'evil.pt'}: refused: loading it needs a pickled object (")
    assert "could run arbitrary code" in message and "convert it to safetensors" in message


def test_pickled_training_state_is_refused_in_one_line(tmp_path: Path) -> None:
    torch.save({"step": 3, "evil": _Evil()}, tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match=r"state\.pt: refused: .* could run arbitrary code") as info:
        load_train_state(tmp_path / "state.pt")
    assert "\n" not in str(info.value) and "Weights only" not in str(info.value)


def test_cli_pickle_refusal_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for step in (1, 2):
        torch.save({"weight": torch.zeros(2), "evil": _Evil()}, folder / f"ckpt-{step:09d}.pt")
    (tmp_path / "c.json").write_text('{"steps": [1, 2], "coefficients": [0.5, 0.5]}')
    before = tree_snapshot(tmp_path)
    merge = ["--coeffs", str(tmp_path / "c.json"), "-o", str(tmp_path / "out" / "m.safetensors")]
    for command in ("inspect", "merge"):  # headers only, and the stack: one refusal each, nothing left behind
        proc = subprocess.run([sys.executable, "-m", "lcsc", command, str(folder), *(merge if command == "merge"
                               else [])], capture_output=True, text=True,
                              env={**os.environ, "LCSC_TEST_MARKER": str(tmp_path / "marker")})
        assert proc.returncode == 2 and tree_snapshot(tmp_path) == before, proc.stderr  # no marker, cache, output
        assert len(problem_lines(proc.stderr)) == 1 and "refused: loading it needs a pickled object" in proc.stderr


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\x00" * 100])
def test_garbage_files(tmp_path: Path, content: bytes) -> None:
    for suffix in (".safetensors", ".pt"):
        path = tmp_path / f"x{suffix}"
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=str(path.name)):
            load_checkpoint(path)


def test_truncated_files(tmp_path: Path, ckpt_dir: Path, states) -> None:
    src = sorted(ckpt_dir.glob("*.safetensors"))[0]
    data = src.read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    torch.save(states[0], tmp_path / "t.pt")
    pt = (tmp_path / "t.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(pt[: len(pt) // 2])
    for name in ("t.safetensors", "t.pt"):
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(tmp_path / name)


def test_non_state_dict_pickle(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save({"config": {"a": 1}, "lr": 0.1}, tmp_path / "cfg.pt")
    with pytest.raises(CheckpointError, match="no known wrapper key"):
        load_checkpoint(tmp_path / "cfg.pt")


def test_empty_dir_and_single_checkpoint(tmp_path: Path, states) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints found"):
        CheckpointStack.open(tmp_path / "empty")
    write_states(tmp_path / "one", states[:1])
    with pytest.raises(CheckpointError, match="only one checkpoint"):
        CheckpointStack.open(tmp_path / "one")
    with pytest.raises(CheckpointError, match="no such file"):
        CheckpointStack.open(tmp_path / "missing")
