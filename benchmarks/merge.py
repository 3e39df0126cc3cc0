"""Benchmark: merging a K×P checkpoint stack on the CPU, against memory bandwidth and a naive state-dict loop.

Measures, on a synthetic set of K safetensors checkpoints of P float32 numbers each:
  build_s                   building the stack cache from scratch (``CheckpointStack.open``), and a re-open
  bandwidth_gbps            memory-read bandwidth of this machine (``torch.sum`` over a >= 1 GB float32 tensor)
  merge_gbps                one ``merge(stack, a)``: stack bytes read per second; merge_bw_ratio = merge/bandwidth
  batched_speedup_vs_naive  per-candidate time of a naive K-state-dict loop / that of ``merge_many`` with B rows
  peak_rss_over_stack       peak RSS growth (over the RSS after imports) of a process that only opens the
                            stack and merges, / stack bytes; the raw ratio is printed too
Each measurement runs in its own subprocess (this script with a hidden ``--phase``), so peak RSS is per phase.
The last line printed is one JSON object with the figures above.

With ``--device cuda`` a last phase times ``merge`` / ``merge_many`` on the GPU and checks them against the CPU.

Run:  python benchmarks/merge.py [--K 100 --P 5000000 --B 16 --workdir DIR --keep]   (or --quick: K=20, P=500000)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch
from safetensors.torch import load_file

from lcsc.checkpoints import CheckpointStack, checkpoint_name, save_checkpoint
from lcsc.devices import check_device
from lcsc.errors import ConfigError
from lcsc.merge import merge, merge_many

GB = 1e9


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def coefficients(K: int, rows: int, seed: int) -> np.ndarray:  # noqa: N803 - the paper's symbol
    """Random real coefficients (rows, K), each row summing to about 1."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, K)) / np.sqrt(K) + 1.0 / K


def layer_shapes(P: int, seed: int = 0) -> list[tuple[str, tuple[int, ...]]]:  # noqa: N803
    """~50 float tensors of varied shapes (conv, linear, bias, norm) whose sizes sum to exactly P."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.3, 1.7, size=16)
    budget = 0.97 * P * weights / weights.sum()
    shapes: list[tuple[str, tuple[int, ...]]] = []
    for i, target in enumerate(budget):
        rows = int(rng.choice([32, 64, 128, 256]))
        if i % 3 == 0:  # a 3×3 convolution
            shapes.append((f"block{i}.conv.weight", (rows, max(1, int(target) // (rows * 9)), 3, 3)))
        else:
            shapes.append((f"block{i}.linear.weight", (rows, max(1, int(target) // rows))))
        shapes += [(f"block{i}.bias", (rows,)), (f"block{i}.norm.weight", (rows,))]
    used = sum(int(np.prod(s)) for _, s in shapes)
    if used >= P:
        raise SystemExit(f"P={P} is too small for the synthetic layout (needs > {used})")
    return shapes + [("head.weight", (P - used,))]


def generate(folder: Path, K: int, P: int) -> None:  # noqa: N803
    """Write K checkpoints one at a time: random float32 tensors plus a small int64 buffer."""
    shapes = layer_shapes(P)
    gen = torch.Generator().manual_seed(0)
    for k in range(K):
        flat = torch.randn(P, generator=gen)
        sd, offset = {}, 0
        for name, shape in shapes:
            n = int(np.prod(shape))
            sd[name] = flat[offset : offset + n].view(shape)
            offset += n
        sd["buffers.num_batches_tracked"] = torch.arange(8, dtype=torch.int64)
        step = (k + 1) * 1000
        save_checkpoint(folder / checkpoint_name(step), sd, step=step)


def phase_build(folder: Path, args: argparse.Namespace) -> dict:
    """Build the stack cache from scratch, then re-open it."""
    shutil.rmtree(folder / ".lcsc-cache", ignore_errors=True)
    t0 = time.perf_counter()
    stack = CheckpointStack.open(folder, progress=False)
    build_s = time.perf_counter() - t0
    assert stack.cache_state == "built", stack.cache_state
    del stack
    t0 = time.perf_counter()
    stack = CheckpointStack.open(folder, progress=False)
    reopen_s = time.perf_counter() - t0
    assert stack.cache_state == "reused", stack.cache_state
    return {"build_s": build_s, "reopen_s": reopen_s, "stack_bytes": stack.nbytes}


def phase_merge(folder: Path, args: argparse.Namespace) -> dict:
    """Memory bandwidth and single-merge throughput, measured alone and interleaved (best of each)."""
    stack = CheckpointStack.open(folder, progress=False)
    a = coefficients(stack.K, 1, seed=1)[0]
    merge(stack, a, as_vector=True)  # warm-up: maps the stack's pages into this process
    nbytes = min(max(stack.nbytes, 1 << 30), 2 << 30)
    buf = torch.ones(nbytes // 4, dtype=torch.float32)
    torch.sum(buf)
    bw_alone = best_time(lambda: torch.sum(buf), args.repeats)
    merge_alone = best_time(lambda: merge(stack, a, as_vector=True), args.repeats)
    bw_mixed, merge_mixed = float("inf"), float("inf")
    for _ in range(args.repeats):
        bw_mixed = min(bw_mixed, best_time(lambda: torch.sum(buf), 1))
        merge_mixed = min(merge_mixed, best_time(lambda: merge(stack, a, as_vector=True), 1))
    return {
        "buffer_bytes": buf.numel() * 4,
        "bw_alone_gbps": buf.numel() * 4 / bw_alone / GB,
        "bw_mixed_gbps": buf.numel() * 4 / bw_mixed / GB,
        "merge_alone_gbps": stack.nbytes / merge_alone / GB,
        "merge_mixed_gbps": stack.nbytes / merge_mixed / GB,
        "merge_s": min(merge_alone, merge_mixed),
        "threads": torch.get_num_threads(),
    }


def phase_rss(folder: Path, args: argparse.Namespace) -> dict:
    """Peak RSS of the merge path only: open the stack, merge one candidate, then B candidates."""
    baseline = psutil.Process().memory_info().rss  # RSS now, after imports; ru_maxrss may hold import peaks
    stack = CheckpointStack.open(folder, progress=False)
    A = coefficients(stack.K, args.B, seed=2)
    out = merge(stack, A[0], as_vector=True)
    del out
    after_merge = max_rss_bytes()
    out = merge_many(stack, A)
    del out
    return {"baseline": baseline, "after_merge": after_merge, "after_many": max_rss_bytes()}


def naive_merge(sds: list[dict[str, torch.Tensor]], a: np.ndarray) -> dict[str, torch.Tensor]:
    """The naive merge the issue names (the paper's Table 5 "merging"): loop over the K state dicts in RAM and
    add aₖ·θₖ tensor by tensor into a model-sized accumulator."""
    out = {name: (t * float(a[0]) if t.is_floating_point() else t.clone()) for name, t in sds[0].items()}
    for sd, ak in zip(sds[1:], a[1:], strict=True):
        for name, t in sd.items():
            if t.is_floating_point():
                out[name].add_(t, alpha=float(ak))
    return out


def naive_merge_by_name(sds: list[dict[str, torch.Tensor]], a: np.ndarray) -> dict[str, torch.Tensor]:
    """A cache-friendlier naive loop (tensor-major): for each name, acc = Σₖ aₖ·sdₖ[name]. Reported for context."""
    out = {}
    for name, ref in sds[-1].items():
        if not ref.is_floating_point():
            out[name] = ref.clone()
            continue
        acc = sds[0][name] * float(a[0])
        for sd, ak in zip(sds[1:], a[1:], strict=True):
            acc.add_(sd[name], alpha=float(ak))
        out[name] = acc
    return out


def naive_subset(paths: list[Path], stack_bytes: int) -> int:
    """How many checkpoints fit in RAM as state dicts, leaving room for the stack (page cache) and 1 GiB."""
    model_bytes = paths[0].stat().st_size
    spare = psutil.virtual_memory().available - stack_bytes - (1 << 30)
    return max(2, min(len(paths), spare // model_bytes))


def phase_naive(folder: Path, args: argparse.Namespace) -> dict:
    """Naive per-candidate merge over K loaded state dicts vs merge_many(B)/B; and a correctness check."""
    stack = CheckpointStack.open(folder, progress=False)
    n = naive_subset(stack.paths, stack.nbytes)
    sds = [load_file(str(p)) for p in stack.paths[:n]]
    A = coefficients(stack.K, args.B, seed=3)
    A[:, n:] = 0.0  # with a subset, the batched merge gets the same (zero-padded) candidates
    times, reference = [], naive_merge(sds, A[0, :n])  # warm-up; candidate 0 is the correctness reference
    for b in range(min(3, args.B)):  # each candidate timed alone; best (like merge_many's) and mean reported
        t0 = time.perf_counter()
        naive_merge(sds, A[b, :n])
        times.append((time.perf_counter() - t0) * stack.K / n)
    by_name = best_time(lambda: naive_merge_by_name(sds, A[1, :n]), 3) * stack.K / n
    merge_many(stack, A)  # warm-up
    many_s = best_time(lambda: merge_many(stack, A), args.repeats)
    row = stack.state_dict(merge_many(stack, A)[0])
    floats = [k for k in reference if reference[k].is_floating_point()]
    diff = max(float((reference[k] - row[k]).abs().max()) for k in floats)
    scale = max(float(sd[k].abs().max()) for sd in sds for k in floats)  # float32 summation error bound:
    bound = stack.K * float(np.finfo(np.float32).eps) * float(np.abs(A[0]).sum()) * scale
    return {
        "naive_subset": n,
        "naive_s": min(times),
        "naive_mean_s": sum(times) / len(times),
        "naive_by_name_s": by_name,
        "many_s": many_s,
        "max_abs_diff": diff,
        "diff_bound": bound,
    }


def sync(dev: torch.device) -> None:
    """Wait for the accelerator's queued work (timings of asynchronous kernels)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def phase_device(folder: Path, args: argparse.Namespace) -> dict:
    """``--device cuda``: one merge and merge_many(B) on the accelerator (stack resident there when it fits),
    synchronised, and the largest difference of its rows from the CPU merge."""
    dev = torch.device(args.device)
    stack = CheckpointStack.open(folder, progress=False)
    A = coefficients(stack.K, args.B, seed=4)

    def timed(fn) -> float:
        fn()  # warm-up: copies the stack to the device once, loads the kernels
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            fn()
        sync(dev)
        return (time.perf_counter() - t0) / args.repeats

    one_s = timed(lambda: merge(stack, A[0], device=dev, as_vector=True))
    many_s = timed(lambda: merge_many(stack, A, device=dev))
    diff = float((merge_many(stack, A, device=dev).cpu() - merge_many(stack, A)).abs().max())
    return {"device": str(dev), "device_merge_gbps": stack.nbytes / one_s / GB, "device_merge_ms": one_s * 1e3,
            "device_many_ms": many_s * 1e3, "device_max_abs_diff": diff,
            "resident": stack.device_matrix(dev) is not None}


PHASES = {"build": phase_build, "merge": phase_merge, "rss": phase_rss, "naive": phase_naive, "device": phase_device}


def run_phase(name: str, folder: Path, args: argparse.Namespace) -> dict:
    """Run one phase in a fresh interpreter; its last stdout line is a JSON object."""
    cmd = [sys.executable, __file__, "--phase", name, "--dir", str(folder), "--B", str(args.B)]
    cmd += ["--repeats", str(args.repeats), "--device", args.device]
    print(f"[{name}] running ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"phase {name!r} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_disk(workdir: Path, K: int, P: int) -> None:  # noqa: N803
    """Exit with a clear message when ``workdir`` lacks room for the checkpoints plus the stack cache."""
    need, free = 2 * K * P * 4, shutil.disk_usage(workdir).free
    print(f"disk: need ~{need / GB:.2f} GB in {workdir} (checkpoints + stack cache), free {free / GB:.2f} GB")
    if free < need * 1.05 + (100 << 20):
        raise SystemExit(
            f"error: not enough free disk in {workdir}: need ~{need / GB:.2f} GB, have {free / GB:.2f} GB"
        )


def figures(B: int, r: dict) -> dict:  # noqa: N803
    """The headline figures (the last line's JSON) from the phases' results."""
    m = r["merge"]
    bandwidth = max(m["bw_alone_gbps"], m["bw_mixed_gbps"])
    merge_gbps = max(m["merge_alone_gbps"], m["merge_mixed_gbps"])
    return {
        "bandwidth_gbps": bandwidth,
        "merge_gbps": merge_gbps,
        "merge_bw_ratio": merge_gbps / bandwidth,
        "batched_speedup_vs_naive": r["naive"]["naive_s"] / (r["naive"]["many_s"] / B),
        # growth of the merge path over the interpreter + imports (~0.23 GB of torch/numpy, stack-independent)
        "peak_rss_over_stack": (r["rss"]["after_merge"] - r["rss"]["baseline"]) / r["build"]["stack_bytes"],
        "build_s": r["build"]["build_s"],
    }


def report(K: int, P: int, B: int, r: dict, f: dict) -> None:  # noqa: N803
    """Print the human-readable summary with the targets."""
    b, m, s, n = r["build"], r["merge"], r["rss"], r["naive"]
    stack, model = b["stack_bytes"], P * 4
    rss_target = 1 + 3 * model / stack
    ok = lambda good: "PASS" if good else "FAIL"  # noqa: E731
    sub = (
        "" if n["naive_subset"] == K else f" (timed on {n['naive_subset']}/{K} checkpoints, scaled linearly)"
    )
    lines = [
        f"\nK={K} P={P:,} B={B}: stack {stack / GB:.3f} GB, model {model / GB:.4f} GB, threads {m['threads']}",
        f"build   : {b['build_s']:.2f} s from scratch ({stack / b['build_s'] / GB:.2f} GB/s of stack); "
        f"re-open {b['reopen_s'] * 1e3:.1f} ms",
        f"memory  : torch.sum over {m['buffer_bytes'] / GB:.2f} GB: {m['bw_alone_gbps']:.2f} GB/s alone, "
        f"{m['bw_mixed_gbps']:.2f} GB/s interleaved with merges",
        f"merge   : {m['merge_alone_gbps']:.2f} GB/s alone, {m['merge_mixed_gbps']:.2f} GB/s interleaved "
        f"(best {m['merge_s'] * 1e3:.1f} ms)",
        f"  merge_bw_ratio = {f['merge_bw_ratio']:.3f} (best merge / best bandwidth)  "
        f"target >= 0.7: {ok(f['merge_bw_ratio'] >= 0.7)}",
        f"naive   : {n['naive_s'] * 1e3:.1f} ms per candidate, best of {min(3, B)} "
        f"(mean {n['naive_mean_s'] * 1e3:.1f} ms){sub}",
        f"batched : merge_many B={B}: {n['many_s'] * 1e3:.1f} ms, {n['many_s'] / B * 1e3:.1f} ms per candidate",
        f"  batched_speedup_vs_naive = {f['batched_speedup_vs_naive']:.2f}  "
        f"target >= 8: {ok(f['batched_speedup_vs_naive'] >= 8)}",
        f"  (a tensor-major naive loop, {n['naive_by_name_s'] * 1e3:.1f} ms per candidate, would give "
        f"{n['naive_by_name_s'] / (n['many_s'] / B):.2f}x)",
        f"  correctness: max |merge_many row 0 - naive| = {n['max_abs_diff']:.3g} "
        f"(float32 bound {n['diff_bound']:.3g}): {ok(n['max_abs_diff'] <= n['diff_bound'])}",
        f"rss     : after imports {s['baseline'] / GB:.3f} GB; peak after merge {s['after_merge'] / GB:.3f} GB; "
        f"after merge_many(B={B}) {s['after_many'] / GB:.3f} GB (its output is {B} models)",
        f"  peak_rss_over_stack = {f['peak_rss_over_stack']:.3f} (peak minus the RSS after imports)  "
        f"target <= 1 + 3*model/stack = {rss_target:.3f}: {ok(f['peak_rss_over_stack'] <= rss_target)}",
        f"  raw peak RSS / stack, interpreter included: {s['after_merge'] / stack:.3f}",
    ]
    print("\n".join(lines))


def device_report(d: dict, B: int) -> dict:  # noqa: N803
    """Print the accelerator phase; its figures for the last line's JSON."""
    print(f"{d['device']:<8}: merge {d['device_merge_gbps']:.1f} GB/s of stack ({d['device_merge_ms']:.2f} ms, "
          f"stack {'resident' if d['resident'] else 'streamed'}); merge_many B={B}: {d['device_many_ms']:.2f} ms; "
          f"max |device − CPU| = {d['device_max_abs_diff']:.3g}")
    return {"device": d["device"], "device_merge_gbps": round(d["device_merge_gbps"], 3),
            "device_many_ms": round(d["device_many_ms"], 3), "device_max_abs_diff": d["device_max_abs_diff"]}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--K", type=int, default=100, help="number of checkpoints (default 100)")
    p.add_argument("--P", type=int, default=5_000_000, help="float32 numbers per checkpoint (default 5M)")
    p.add_argument("--B", type=int, default=16, help="candidates per merge_many call (default 16)")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats, best taken (default 5)")
    p.add_argument(
        "--workdir", type=Path, default=None, help="where to write files (default: a temp dir in /tmp)"
    )
    p.add_argument("--keep", action="store_true", help="keep the generated checkpoints and cache")
    p.add_argument("--quick", action="store_true", help="small smoke run: K=20, P=500000")
    p.add_argument("--device", default="cpu",
                   help="also time merging on this accelerator (e.g. cuda) and compare it with the CPU merge")
    p.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.K, args.P = 20, 500_000
    try:
        check_device(args.device)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    return args


def main() -> None:
    args = parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.dir, args)))
        return
    workdir = (args.workdir or Path(tempfile.gettempdir())).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    check_disk(workdir, args.K, args.P)
    folder = Path(tempfile.mkdtemp(prefix="lcsc-merge-bench-", dir=workdir))
    try:
        t0 = time.perf_counter()
        generate(folder, args.K, args.P)
        print(f"generated {args.K} checkpoints in {folder} ({time.perf_counter() - t0:.1f} s)", flush=True)
        results = {name: run_phase(name, folder, args) for name in ("build", "merge", "rss", "naive")}
        headline = {k: round(float(v), 3) for k, v in figures(args.B, results).items()}
        report(args.K, args.P, args.B, results, headline)
        if args.device != "cpu":
            headline.update(device_report(run_phase("device", folder, args), args.B))
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
