"""Bad checkpoint sets: each gives one clear error naming the file and tensor, and leaves no cache behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lcsc.checkpoints import CheckpointStack, checkpoint_name, save_checkpoint
from lcsc.errors import CheckpointError
from tests.conftest import write_states


def _open_fails(folder: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        CheckpointStack.open(folder, progress=False)
    cache = folder / ".lcsc-cache"
    assert not cache.exists() or not any(cache.iterdir()), "a failed build must leave no cache files"


def test_mismatched_keys(tmp_path: Path, states) -> None:
    states[2] = {k: v for k, v in states[2].items() if k != "3.bias"}
    write_states(tmp_path, states)
    _open_fails(tmp_path, r"ckpt-000000300.*missing 1 key.*3\.bias")


def test_mismatched_shapes(tmp_path: Path, states) -> None:
    states[3]["3.bias"] = torch.zeros(11)
    write_states(tmp_path, states)
    _open_fails(tmp_path, r"ckpt-000000400.*'3\.bias' has shape \(11,\)")


def test_mismatched_dtypes(tmp_path: Path, states) -> None:
    states[1]["0.weight"] = states[1]["0.weight"].half()
    write_states(tmp_path, states)
    _open_fails(tmp_path, r"ckpt-000000200.*'0\.weight' has dtype float16")


def test_duplicate_steps(tmp_path: Path, states) -> None:
    save_checkpoint(tmp_path / "a-1.safetensors", states[0], step=500)
    save_checkpoint(tmp_path / "b-2.safetensors", states[1], step=500)
    _open_fails(tmp_path, "both have step 500")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_inf(tmp_path: Path, states, bad: float) -> None:
    states[4]["3.weight"][0, 0] = bad
    write_states(tmp_path, states)
    _open_fails(tmp_path, r"ckpt-000000500.*'3\.weight'")


def test_float16_storage_overflow_named(tmp_path: Path, states) -> None:
    states[0]["3.bias"][0] = 1e6
    write_states(tmp_path, states)
    with pytest.raises(CheckpointError, match=r"'3\.bias'.*float16"):
        CheckpointStack.open(tmp_path, storage="float16", progress=False)


def test_non_float_mismatch_is_reported(tmp_path: Path, states) -> None:
    states[0]["1.num_batches_tracked"] = torch.tensor(3)
    write_states(tmp_path, states)
    with pytest.warns(UserWarning, match="num_batches_tracked"):
        stack = CheckpointStack.open(tmp_path, cache=False, progress=False)
    assert stack.notes and int(stack.extras["1.num_batches_tracked"]) == int(
        states[-1]["1.num_batches_tracked"]
    )


def test_unknown_storage(tmp_path: Path, states) -> None:
    write_states(tmp_path, states)
    with pytest.raises(CheckpointError, match="storage='int8'"):
        CheckpointStack.open(tmp_path, storage="int8")


def test_checkpoint_name_sorts() -> None:
    assert checkpoint_name(123400) == "ckpt-000123400.safetensors"
