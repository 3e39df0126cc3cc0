"""Anchors: extra stack rows after the window, merged exactly (float64 references), validated, never cached."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import lcsc.merge.linear as linear
from lcsc.atomic import sha256_file
from lcsc.checkpoints import Anchor, CheckpointStack, save_checkpoint
from lcsc.checkpoints.anchors import state_dict_sha256
from lcsc.errors import CheckpointError
from lcsc.merge import GroupPlan, StackMerger, merge, merge_many
from tests.conftest import make_states, write_states

GROUPS = {"bn": ["1.*"], "rest": ["*"]}  # BatchNorm (running_var) kept convex: no clamping in the reference


@pytest.fixture
def window(tmp_path: Path):
    states = make_states(4, seed=1)
    write_states(tmp_path / "w", states)
    return tmp_path / "w", states


def _reference(rows: list[dict[str, torch.Tensor]], A: np.ndarray, groups: dict[str, list[str]] | None):
    """Σ_k A[g, k] θ_k per tensor in float64, g the tensor's group (first matching glob)."""
    names = list(groups) if groups else ["all"]
    out = {}
    for name, t in rows[0].items():
        if not t.is_floating_point():
            continue
        g = next(i for i, n in enumerate(names) if groups is None or any(fnmatch.fnmatchcase(name, p)
                                                                        for p in groups[n]))
        out[name] = sum(float(A[g, k]) * r[name].to(torch.float64) for k, r in enumerate(rows))
    return out


def _close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    for name, w in want.items():
        assert torch.allclose(got[name].to(torch.float64), w, rtol=1e-5, atol=1e-5), name


def test_anchored_merge_matches_float64_reference(window, tmp_path, monkeypatch) -> None:
    folder, states = window
    extra = make_states(2, seed=7)
    path = save_checkpoint(tmp_path / "other.safetensors", extra[0], step=900, ema_rate=0.99)
    stack = CheckpointStack.open(folder, cache=False, progress=False, anchors={"file": path, "sd": extra[1]})
    assert (stack.K, stack.K_window, stack.row_names[-3:]) == (6, 4, ["step 400", "file", "sd"])
    assert stack.anchors[0] == Anchor("file", sha256_file(path), str(path.resolve()), "file", None, 900, 0.99)
    assert stack.anchors[1].kind == "state" and stack.anchors[1].sha256 == state_dict_sha256(extra[1])
    plan = GroupPlan.from_globs(stack.layout, GROUPS)
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 2, 6))
    A[:, 0] = rng.dirichlet(np.ones(6), size=3)  # the BatchNorm group convex
    A /= A.sum(axis=2, keepdims=True)
    rows = [*states, *extra]
    for b in range(3):
        want = _reference(rows, A[b], GROUPS)
        for chunk in (64, 1 << 20):  # many column blocks (crossing group runs), and one
            _close(stack.state_dict(merge_many(stack, A, plan=plan, chunk_bytes=chunk)[b]), want)
    # the accelerator path's arithmetic, run on CPU tensors
    monkeypatch.setattr(linear, "_merge_cpu", lambda m, a, out, blocks, anchors=None:
                        linear._merge_device(stack, a, out, blocks))
    _close(stack.state_dict(merge_many(stack, A, plan=plan, chunk_bytes=64)[1]), _reference(rows, A[1], GROUPS))


def test_anchor_rows_alone_and_zero_anchor_weight(window) -> None:
    folder, states = window
    extra = make_states(1, seed=3)[0]
    base = CheckpointStack.open(folder, cache=False, progress=False)
    stack = base.with_anchors([("x", extra)])
    assert stack.matrix is base.matrix and base.K == 4 and base.anchors == []
    one_hot = np.eye(5)[4]
    got = merge(stack, one_hot)
    assert all(torch.equal(got[k], extra[k]) for k in extra)
    assert all(torch.equal(stack.checkpoint(4)[k], extra[k]) for k in extra)
    a = np.array([0.5, -0.25, 0.5, 0.25])
    assert torch.equal(merge(stack, np.append(a, 0.0), as_vector=True), merge(base, a, as_vector=True))
    with pytest.raises(IndexError):
        stack.checkpoint(5)


def test_identical_rows_merge_to_themselves(tmp_path: Path) -> None:
    theta = make_states(1, seed=5)[0]
    write_states(tmp_path / "w", [theta] * 3)
    stack = CheckpointStack.open(tmp_path / "w", cache=False, progress=False, anchors={"same": theta})
    plan = GroupPlan.from_globs(stack.layout, GROUPS)
    A = np.array([[[0.25, 0.25, 0.25, 0.25], [2.0, -1.5, 0.75, -0.25]]])
    got = stack.state_dict(merge_many(stack, A, plan=plan)[0])
    for name, t in theta.items():
        assert torch.allclose(got[name], t, atol=1e-5) if t.is_floating_point() else torch.equal(got[name], t)


def test_cached_and_uncached_give_the_same_anchored_merge(window, tmp_path) -> None:
    folder, _ = window
    extra = make_states(1, seed=11)[0]
    ram = CheckpointStack.open(folder, cache=False, progress=False, anchors={"e": extra})
    built = CheckpointStack.open(folder, progress=False, anchors={"e": extra})
    plain = CheckpointStack.open(folder, progress=False)
    reused = CheckpointStack.open(folder, progress=False, anchors={"e": extra})
    assert (built.cache_state, plain.cache_state, reused.cache_state) == ("built", "reused", "reused")
    assert built.cache_path == plain.cache_path == reused.cache_path, "the cache is keyed on the window only"
    sidecar = json.loads(built.cache_path.with_suffix(".json").read_text())
    assert "anchors" not in sidecar and len(sidecar["paths"]) == 4
    A = np.array([[0.4, -0.3, 0.2, 0.5, 0.2], [0.0, 0.0, 0.0, -1.0, 2.0]])
    want = merge_many(ram, A)
    assert torch.equal(merge_many(built, A), want) and torch.equal(merge_many(reused, A), want)


def test_summary_and_merger_expose_anchors(window, tmp_path) -> None:
    folder, _ = window
    extra = make_states(1, seed=2)[0]
    stack = CheckpointStack.open(folder, cache=False, progress=False, anchors={"ema:hl-5": extra})
    s = stack.summary()
    assert (s["K"], s["K_window"], s["anchors"][0]["name"], s["anchors"][0]["row"]) == (5, 4, "ema:hl-5", 4)
    assert s["anchor_bytes"] == 4 * stack.P and s["stack_bytes"] == 4 * 4 * stack.P
    merger = StackMerger(stack)
    assert (merger.K, merger.K_window, merger.steps) == (5, 4, [100, 200, 300, 400])
    assert merger.hashes == [*stack.hashes, stack.anchors[0].sha256]
    assert merger.anchors == [stack.anchors[0].to_json()]
    individual = np.array([0.1, 0.2, 0.3, -0.1, 0.5])
    coeffs = merger.coefficients(individual)
    assert coeffs.anchors == (stack.anchors[0].to_json(),) and coeffs.values.shape == (1, 5)
    out = merger.save(tmp_path / "m.safetensors", individual)
    with safe_open(str(out), "pt") as fh:
        meta = fh.metadata()
    assert json.loads(meta["lcsc_anchors"]) == [{"name": "ema:hl-5", "sha256": stack.anchors[0].sha256}]
    assert json.loads(meta["lcsc_coefficients"])["anchors"][0]["name"] == "ema:hl-5"
    assert Anchor.from_json(stack.anchors[0].to_json()) == stack.anchors[0]


def _bad(states, **change):
    sd = {k: v.clone() for k, v in states[0].items()}
    for key, value in change.items():
        if value is None:
            del sd[key.replace("__", ".")]
        else:
            sd[key.replace("__", ".")] = value
    return sd


@pytest.mark.parametrize("change,match", [
    ({"3__weight": None}, r"another architecture .*missing 1 key\(s\) such as \['3.weight'\]"),
    ({"4__weight": torch.zeros(2)}, r"another architecture .*1 extra key\(s\) such as \['4.weight'\]"),
    ({"3__bias": torch.zeros(11)}, r"another architecture .*tensor '3.bias' has shape \(11,\) vs \(10,\)"),
    ({"3__bias": torch.zeros(10, dtype=torch.float16)}, r"tensor '3.bias' has dtype float16 vs float32"),
    ({"3__bias": torch.tensor([float("nan")] * 10)}, r"contains NaN/Inf in tensor '3.bias' \(10 NaN, 0 Inf\)"),
    ({"0__bias": torch.tensor([1.0, float("inf"), 0.0, 0.0])}, r"contains NaN/Inf in tensor '0.bias' \(0 NaN, 1 Inf"),
])
def test_bad_anchor_is_one_line_naming_it(window, tmp_path, change, match) -> None:
    folder, states = window
    path = save_checkpoint(tmp_path / "bad.safetensors", _bad(states, **change), step=1)
    base = CheckpointStack.open(folder, cache=False, progress=False)
    for value, source in ((path, str(path.resolve())), (_bad(states, **change), "<state dict>")):
        with pytest.raises(CheckpointError, match=match) as info:
            base.with_anchors([("ema:bad", value)])
        assert str(info.value).startswith(f"anchor 'ema:bad' ({source})") and "\n" not in str(info.value)


def test_duplicate_anchors_are_refused(window, tmp_path) -> None:
    folder, states = window
    base = CheckpointStack.open(folder, cache=False, progress=False)
    extra = make_states(1, seed=4)[0]
    with pytest.raises(CheckpointError, match="anchor name 'a' is given twice"):
        base.with_anchors([("a", extra), ("a", make_states(1, seed=5)[0])])
    with pytest.raises(CheckpointError, match=r"anchor 'b' \(<state dict>\) has the same content .* as anchor 'a'"):
        base.with_anchors([("a", extra), ("b", {k: v.clone() for k, v in extra.items()})])
    window_file = base.paths[1]
    with pytest.raises(CheckpointError, match=rf"anchor 'w' .* same content .* as window checkpoint {window_file}"):
        base.with_anchors([("w", window_file)])
    with pytest.raises(CheckpointError, match="expected a state dict or a checkpoint path"):
        base.with_anchors([("n", 3)])


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_16bit_window_with_float32_anchors(window, storage) -> None:
    folder, _ = window
    extra = make_states(1, seed=13)[0]
    stack = CheckpointStack.open(folder, storage=storage, progress=False, anchors={"a": extra})
    assert stack.anchor_matrix.dtype == torch.float32 and str(stack.matrix.dtype) == f"torch.{storage}"
    rows = [stack.checkpoint(k) for k in range(stack.K)]  # the stored (rounded) window rows, the exact anchor
    assert all(torch.equal(rows[4][k], extra[k]) for k in extra)
    A = np.array([[0.3, -0.2, 0.4, 0.1, 0.4]])
    _close(stack.state_dict(merge_many(stack, A)[0]), _reference(rows, A, None))
