"""Run folders of diffusers training loops (accelerate's save_state) open as stacks with the right steps and rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lcsc.checkpoints.reader as reader
from lcsc.checkpoints import CheckpointStack, discover_checkpoints
from lcsc.errors import CheckpointError
from tests.diffusers_run import train_run


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def hook_run(tmp_path_factory) -> tuple[Path, dict]:
    """The diffusers example's layout: checkpoint-N/{unet,unet_ema}/ + optimizer/scheduler/RNG pickles, and the
    final pipeline (unet/, scheduler/, model_index.json) at the run's root."""
    out = tmp_path_factory.mktemp("hook") / "run"
    saved = train_run(out, (3, 6, 12), use_ema=True, pipeline=True)
    for n in (3, 6, 12):  # a GradScaler's state as accelerate names it: never to be read
        (out / f"checkpoint-{n}" / "scaler.pt").write_bytes(b"not a checkpoint")
    return out, saved


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> tuple[Path, dict]:
    """save_state without a hook, with a second prepared model: model.safetensors and model_1.safetensors."""
    out = tmp_path_factory.mktemp("plain") / "run"
    return out, train_run(out, (2, 10, 4), hook=False, second_model=True)


def test_hook_run_reads_unet_folders_with_steps_and_rows(hook_run, monkeypatch) -> None:
    run, saved = hook_run
    monkeypatch.setattr(reader, "safe_torch_load", _never)  # no pickle (optimizer.bin, scaler.pt, …) is opened
    found = discover_checkpoints(run)
    assert [p.name for p in found] == ["checkpoint-12", "checkpoint-3", "checkpoint-6"]  # not the final unet/
    for cache in (False, True):
        stack = CheckpointStack.open(run, cache=cache, progress=False)
        assert stack.steps == [3, 6, 12] and set(stack.step_origins) == {"filename"}
        for k, step in enumerate(stack.steps):
            assert _equal(stack.checkpoint(k), saved[step])
    assert reader.weights_file(run / "checkpoint-6").parent.name == "unet"  # the raw weights, not unet_ema


def test_ema_folders_are_read_when_named(hook_run) -> None:
    run, saved = hook_run
    stack = CheckpointStack.open(sorted(run.glob("checkpoint-*/unet_ema")), cache=False, progress=False)
    assert stack.steps == [3, 6, 12]
    assert not _equal(stack.checkpoint(2), saved[12])  # the EMA differs from the raw weights


def test_several_models_are_an_error_naming_them_then_chosen_by_path(plain_run) -> None:
    run, saved = plain_run
    with pytest.raises(CheckpointError, match=r"several models \(model\.safetensors, model_1\.safetensors\).*"
                                              r"checkpoint-\*/model_1\.safetensors"):
        discover_checkpoints(run)
    stack = CheckpointStack.open(sorted(run.glob("checkpoint-*/model.safetensors")), cache=False, progress=False)
    assert stack.steps == [2, 4, 10]
    assert all(_equal(stack.checkpoint(k), saved[s]) for k, s in enumerate(stack.steps))
    assert CheckpointStack.open(sorted(run.glob("checkpoint-*/model_1.safetensors")), cache=False,
                                progress=False).steps == [2, 4, 10]


def test_single_model_safetensors_and_state_files(plain_run, tmp_path) -> None:
    run, saved = plain_run
    for n in (2, 4, 10):  # one model per folder, as save_state writes for a single prepared UNet
        folder = tmp_path / "run" / f"checkpoint-{n}"
        folder.mkdir(parents=True)
        for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
            (folder / name).write_bytes((run / f"checkpoint-{n}" / name).read_bytes())
    stack = CheckpointStack.open(tmp_path / "run", cache=False, progress=False)
    assert stack.steps == [2, 4, 10] and _equal(stack.checkpoint(1), saved[4])
    one = tmp_path / "run" / "checkpoint-4"
    assert discover_checkpoints(one) == [one]  # the folder is one checkpoint, not its optimizer.bin
    with pytest.raises(CheckpointError, match="training state"):
        discover_checkpoints(one / "optimizer.bin")


def test_folder_without_weights_is_a_clear_error(tmp_path) -> None:
    folder = tmp_path / "run" / "checkpoint-5"
    folder.mkdir(parents=True)
    (folder / "optimizer.bin").write_bytes(b"x")
    (folder / "random_states_0.pkl").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"checkpoint-5: training checkpoint folder holds no model weights"):
        discover_checkpoints(tmp_path / "run")


def test_loose_state_files_are_not_checkpoints(tmp_path, states) -> None:
    from safetensors.torch import save_file

    for step, sd in zip((10, 20), states):
        save_file(sd, str(tmp_path / f"model_{step}.safetensors"))  # a user's own naming: still plain checkpoints
    (tmp_path / "optimizer.bin").write_bytes(b"x")
    (tmp_path / "scaler.pt").write_bytes(b"x")
    assert [p.name for p in discover_checkpoints(tmp_path)] == ["model_10.safetensors", "model_20.safetensors"]
    assert CheckpointStack.open(tmp_path, cache=False, progress=False).steps == [10, 20]


def _never(*args, **kwargs):
    raise AssertionError(f"a pickle was opened: {args}")
