"""``benchmarks/scale.py``: the --quick run's JSON line (finite positive rates, a cost table, correct merges, no files
left behind), the synthetic stack against a numpy reference, the what-if passes, and the cost model's formulas."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.merge import StackMerger, merge, merge_many

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("scale_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_quick_run_json_line(scale, tmp_path, capsys):
    work = tmp_path / "work"
    results = tmp_path / "rows.jsonl"
    out = scale.main(["--quick", "--workdir", str(work), "--results", str(results)])
    printed = capsys.readouterr().out.strip().splitlines()
    assert json.loads(printed[-1]) == json.loads(json.dumps(out))
    assert list(work.iterdir()) == [], "the temp folder and its stack files must be removed"
    for s in ("f32", "bf16"):
        for kind in ("merge", "merge_many8", "grad_fwd"):
            for how in ("warm", "cold"):
                assert _positive(out[f"{kind}_gbps_{s}_{how}"]), (kind, s, how)
        assert _positive(out[f"grad_bwd_gbps_{s}_warm"]) and _positive(out[f"grad_bwd_gbps_{s}_after_fwd"])
        assert all(_positive(out[f"{k}_gbps_{s}_warm"])
                   for k in ("alt_grad_bwd_sgemv", "host_copy_fresh", "host_copy_stager"))
    for key in ("mem_gbps", "mem_copy_gbps", "disk_gbps", "disk_reread_gbps", "largest_stack_gb", "merge_gbps", "grad_fwd_gbps",
                "grad_bwd_gbps", "alt_merge_shift_gbps_bf16_warm", "host_copy_fresh_gbps", "host_copy_stager_gbps"):
        assert _positive(out[key]), key
    assert out["check_ok"] is True and len(out["rows"]) == 2
    assert all(r["check_ratio"] <= 1.0 for r in out["rows"])
    assert set(out["cost"]) == {f"{m}_K{k}_{s}" for m in ("sd15", "sdxl") for k in (50, 100) for s in ("f32", "bf16")}
    sd15 = out["cost"]["sd15_K50_bf16"]
    assert sd15["stack_gb"] == pytest.approx(86.0) and sd15["gpu_resident"] is False and sd15["gpu"]["streamed"]
    assert sd15["gpu_before"]["streamed"]
    for entry in out["cost"].values():
        for medium in ("nvme", "ram", "gpu_before", "gpu"):
            assert all(_positive(entry[medium][k]) for k in ("pass_s", "candidate_s", "step_s", "alg1_h", "grad_h"))
    # a rerun with the same results file measures nothing and reports the same rows
    again = scale.main(["--quick", "--workdir", str(work), "--results", str(results)])
    assert again["rows"] == out["rows"] and len(results.read_text().splitlines()) == 2
    # rows from before the stager (its fresh-tensor copy named gpu_stream_gather, no stager figure): only their host
    # copies are timed again, appended as one line per row; a rerun finds them and measures nothing
    legacy = tmp_path / "legacy.jsonl"
    lines = []
    for line in results.read_text().splitlines():
        row = {k.replace("host_copy_fresh", "gpu_stream_gather"): v for k, v in json.loads(line).items()
               if not k.startswith("host_copy_stager")}
        lines.append(json.dumps(row) + "\n")
    legacy.write_text("".join(lines))
    redone = scale.main(["--quick", "--workdir", str(work), "--results", str(legacy)])
    assert len(legacy.read_text().splitlines()) == 4 and list(work.iterdir()) == []
    assert all(_positive(redone[f"{k}_gbps"]) for k in ("host_copy_fresh", "host_copy_stager"))
    assert [r["merge_warm_gbps"] for r in redone["rows"]] == [r["merge_warm_gbps"] for r in out["rows"]]
    assert all("host_copy_remeasured" in r for r in redone["rows"]) and redone["check_ok"] is True
    assert scale.main(["--quick", "--workdir", str(work), "--results", str(legacy)])["rows"] == redone["rows"]
    assert len(legacy.read_text().splitlines()) == 4


@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_synthetic_stack_merges_like_numpy(scale, tmp_path, storage):
    K, P = 6, 50_000  # noqa: N806
    path = tmp_path / "s.npy"
    scale.write_stack(path, K, P, storage)
    raw = np.load(path)
    S = (torch.from_numpy(raw).view(torch.bfloat16).double().numpy() if storage == "bfloat16"  # noqa: N806
         else raw.astype(np.float64))
    assert len({S[k, :100].tobytes() for k in range(K)}) == K  # rows differ
    stack = scale.open_stack(path, K, P, storage)
    rng = np.random.default_rng(0)
    a, A, g = rng.standard_normal(K), rng.standard_normal((8, K)), rng.standard_normal(P).astype(np.float32)  # noqa: N806
    tol = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(merge(stack, a, as_vector=True).numpy(), a @ S, **tol)
    np.testing.assert_allclose(merge_many(stack, A).numpy(), A @ S, **tol)
    np.testing.assert_allclose(StackMerger(stack).project(torch.from_numpy(g))[0], S @ g, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(scale.sgemv_project(stack.matrix, torch.from_numpy(g)), S @ g, rtol=1e-4, atol=1e-2)
    if storage == "bfloat16":
        np.testing.assert_allclose(scale.shift_merge(stack.matrix, a), a @ S, **tol)
    del stack
    assert scale.drop_cache(path)
    assert scale.resident_fraction(path) in (None, pytest.approx(0.0, abs=0.05))


def test_cost_model_formulas(scale):
    args = scale.parse_args([])
    r = {f"{k}_{how}": 10.0 for k in scale.PASSES for how in ("warm", "cold")}
    r.update({f"{k}_eta": 0.5 for k in scale.PASSES}, host_copy_fresh_warm=1.0, host_copy_stager_warm=5.0)
    be = scale.break_even({"float32": r}, args)
    # (E − E_g)·(ρt/8 + N·s) = S·(2t + B·f·s) with ρ = 1, E = 95, E_g = 24, N = 1000, S = 40, B = 256, f = 4
    assert be["alg1_evals_95"]["passes_per_sample"] == pytest.approx((71 * 1000 - 40 * 256 * 4) / (80 - 71 / 8),
                                                                     abs=0.01)
    table = scale.cost_model({"float32": r}, args)
    e = table["sd15_K50_f32"]
    nbytes = 50 * 859.5e6 * 4
    assert e["ram"]["pass_s"] == pytest.approx(nbytes / 10e9, rel=1e-3)
    assert e["nvme"]["pass_s"] == pytest.approx(nbytes / 10e9 + nbytes / (0.5 * 3e9), rel=1e-3)
    assert e["gpu"]["streamed"] and e["gpu"]["pass_s"] == pytest.approx(nbytes / 5e9 + nbytes / 25e9, rel=1e-3)
    assert e["gpu_before"]["pass_s"] == pytest.approx(nbytes / 1e9 + nbytes / 25e9, rel=1e-3)
    s_a = (25 * 39 + 10) / 1e3
    xfer = 859.5e6 * 4 / 25e9
    assert e["ram"]["candidate_s"] == pytest.approx(nbytes / 10e9 / 8 + xfer + 1000 * s_a, abs=0.01)
    assert e["ram"]["step_s"] == pytest.approx(2 * nbytes / 10e9 + 2 * xfer + 256 * 4 * s_a, abs=0.01)
    small = scale.cost_model({"float32": r}, scale.parse_args(["--gpu-mem-gb", "400"]))["sd15_K50_f32"]["gpu"]
    assert not small["streamed"] and small["pass_s"] == pytest.approx(nbytes / 2000e9, rel=1e-3)
