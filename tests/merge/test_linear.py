from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.errors import CoefficientError
from lcsc.merge import GroupPlan, groups_by_prefix, merge, merge_many
from tests.conftest import make_states, write_states


def _reference(states, a, names=None):
    """Straightforward per-tensor Σ a_k θ_k in float64."""
    out = {}
    for name, t in states[0].items():
        if t.is_floating_point():
            out[name] = sum(float(ak) * sd[name].double() for ak, sd in zip(a, states))
    return out


@pytest.mark.parametrize("cache", [True, False])
def test_merge_of_identical_checkpoints_returns_input(tmp_path: Path, cache: bool) -> None:
    sd = make_states(1)[0]
    write_states(tmp_path, [sd] * 4)
    stack = CheckpointStack.open(tmp_path, cache=cache, progress=False)
    for a in ([0.25] * 4, [2.0, -1.5, 0.7, -0.2]):
        merged = merge(stack, a)
        for name, t in sd.items():
            assert torch.allclose(merged[name], t, atol=1e-5), name


def test_merge_matches_float64_reference_with_negatives(ckpt_dir: Path, states) -> None:
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.normal(size=stack.K)
        a /= a.sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            merged = merge(stack, a)
        ref = _reference(states, a)
        scale = sum(abs(x) for x in a)
        for name, r in ref.items():
            got = merged[name].double()
            if name.endswith("running_var"):
                r = r.clamp(min=0)
            assert torch.allclose(got, r, atol=4e-6 * scale * float(r.abs().max() + 1)), name
    assert int(merged["1.num_batches_tracked"]) == int(states[-1]["1.num_batches_tracked"])


def test_merge_many_equals_merge_rows(ckpt_dir: Path) -> None:
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    A = np.random.default_rng(1).dirichlet(np.ones(stack.K), size=7)
    many = merge_many(stack, A, chunk_bytes=4096)  # force several chunks
    for b in range(7):
        single = merge(stack, A[b], as_vector=True)
        assert torch.allclose(many[b], single, atol=1e-6)


def test_state_dict_views_share_memory(ckpt_dir: Path) -> None:
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    vec = merge_many(stack, np.full((2, stack.K), 1 / stack.K))[1]
    sd = stack.state_dict(vec)
    spec = next(s for s in stack.layout.float_specs if s.name == "3.weight")
    assert sd["3.weight"].data_ptr() == vec[spec.offset :].data_ptr()


def test_running_var_is_clamped_with_warning(ckpt_dir: Path) -> None:
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    a = np.array([3.0, -2.0, 0.0, 0.0, 0.0])  # 3·v1 − 2·v2 goes negative somewhere
    with pytest.warns(UserWarning, match="running_var"):
        merged = merge(stack, a)
    assert float(merged["1.running_var"].min()) >= 0


def test_groups_use_their_own_coefficients(ckpt_dir: Path, states) -> None:
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    groups = groups_by_prefix(stack.layout)
    assert set(groups) == {"0", "1", "3"}
    plan = GroupPlan.from_globs(stack.layout, groups)
    A = np.eye(stack.K)[[0, 4, 2]]  # group "0" ← ckpt 0, group "1" ← ckpt 4, group "3" ← ckpt 2
    merged = merge(stack, A, plan=plan)
    assert torch.allclose(merged["0.weight"], states[0]["0.weight"])
    assert torch.allclose(merged["1.weight"], states[4]["1.weight"])
    assert torch.allclose(merged["3.bias"], states[2]["3.bias"])
    assert sum(plan.sizes().values()) == stack.P


def test_unmatched_group_and_bad_shapes(ckpt_dir: Path) -> None:
    stack = CheckpointStack.open(ckpt_dir, progress=False)
    with pytest.raises(CoefficientError, match="matches no group"):
        GroupPlan.from_globs(stack.layout, {"conv": ["0.*"]})
    with pytest.raises(CoefficientError, match="do not fit"):
        merge(stack, [0.5, 0.5])
    with pytest.raises(CoefficientError, match="NaN"):
        merge(stack, [float("nan")] * stack.K)


def test_16bit_storage_merges_in_float32(ckpt_dir: Path, states) -> None:
    stack = CheckpointStack.open(ckpt_dir, storage="bfloat16", progress=False)
    a = np.full(stack.K, 1 / stack.K)
    merged = merge(stack, a)
    ref = _reference(states, a)
    assert merged["3.weight"].dtype == torch.float32
    assert torch.allclose(merged["3.weight"].double(), ref["3.weight"], atol=2e-2)
