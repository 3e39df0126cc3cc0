"""The accelerator path's streaming (a stack that does not fit the device): column blocks through one reused host
buffer give the merge of the resident path, the last narrower block included (run here on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.merge import GroupPlan, groups_by_prefix, merge_many
from lcsc.merge.linear import _clamp_nonnegative, _merge_device, _Stager
from tests.conftest import make_states, write_states


def test_stager_returns_each_block_and_reuses_one_buffer():
    matrix = torch.arange(3 * 10, dtype=torch.float32).reshape(3, 10)
    stage = _Stager(matrix, 4, torch.device("cpu"))
    first = stage(0, 4)
    assert torch.equal(first, matrix[:, 0:4]) and first.is_contiguous()
    assert first.data_ptr() == stage.flat.data_ptr()  # on the CPU `.to` keeps the buffer: the same memory
    assert torch.equal(stage(8, 10).clone(), matrix[:, 8:10])  # the narrower last block
    assert stage.flat.numel() == 3 * 4


@pytest.mark.parametrize("anchored", [False, True])
def test_streamed_device_merge_equals_the_merge(tmp_path, monkeypatch, anchored):
    write_states(tmp_path / "ckpts", make_states(5, seed=3))
    stack = CheckpointStack.open(tmp_path / "ckpts", progress=False)
    if anchored:
        stack = stack.with_anchors([("extra", make_states(1, seed=4)[0])])
    plan = GroupPlan.from_globs(stack.layout, groups_by_prefix(stack.layout, 1))
    A = torch.tensor(np.random.default_rng(0).normal(size=(3, plan.G, stack.K)), dtype=torch.float64)
    expected = merge_many(stack, A, plan=plan)
    monkeypatch.setattr(stack, "device_matrix", lambda device: None)  # as when the stack does not fit
    cols = 1024  # several blocks per group, the last one narrower
    blocks = [(c0, min(end, c0 + cols), g) for start, end, g in plan.runs for c0 in range(start, end, cols)]
    out = torch.empty((3, stack.P), dtype=torch.float32)
    _merge_device(stack, A.to(torch.float32), out, blocks)
    _clamp_nonnegative(stack, out)  # as merge_many does (variances)
    assert len(blocks) > plan.G
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
