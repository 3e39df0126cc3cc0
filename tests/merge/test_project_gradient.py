"""∂L/∂a = S·∂L/∂θ (the transpose of the merge): equal to autograd through an explicit θ(a), with groups and anchors,
for any chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.merge import StackMerger, groups_by_prefix, project_gradient
from tests.conftest import make_states, write_states


@pytest.mark.parametrize("chunk_bytes", [64 << 20, 256])
def test_projection_equals_autograd_through_the_merge(tmp_path, chunk_bytes):
    states = make_states(4, seed=7)
    write_states(tmp_path / "ckpts", states)
    stack = CheckpointStack.open(tmp_path / "ckpts", progress=False)
    stack = stack.with_anchors([("extra", make_states(1, seed=8)[0])])
    merger = StackMerger(stack, groups_by_prefix(stack.layout, 1))
    rows = torch.cat([stack.matrix.to(torch.float64), stack.anchor_matrix.to(torch.float64)])  # (K, P)
    a = torch.tensor(np.random.default_rng(0).normal(size=(merger.G, merger.K)), requires_grad=True)
    group_of = torch.empty(stack.P, dtype=torch.long)
    for start, end, g in merger.plan.runs:
        group_of[start:end] = g
    theta = (a[group_of] * rows.T).sum(dim=1)  # θ_p = Σ_k a[g(p), k] S[k, p]
    weights = torch.linspace(-1, 1, stack.P, dtype=torch.float64)
    (weights * theta).sum().backward()
    got = project_gradient(stack, weights.float(), plan=merger.plan, chunk_bytes=chunk_bytes)
    assert merger.G > 1 and got.shape == (merger.G, merger.K)
    np.testing.assert_allclose(got, a.grad.numpy(), rtol=1e-6, atol=1e-6)
