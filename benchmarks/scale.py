"""Benchmark: what a search costs at the sizes users train — stack passes at scale, and a cost model (issue 36).

Writes synthetic memory-mapped K×P stacks (the stack cache's own .npy format, mapped by
``lcsc.checkpoints.cache.map_matrix`` into a :class:`~lcsc.checkpoints.CheckpointStack`) of growing size, in float32
and bfloat16 (``--storage bfloat16``: stored as 16-bit, accumulated in float32), and times the passes a search makes
over them with the functions the search calls:

  merge              one ``merge(stack, a)``: θ = aᵀS, one pass (Alg. 1 merges a candidate this way)
  merge_many8        one ``merge_many(stack, A)`` with 8 rows: a whole Alg. 1 generation in one pass
  grad_fwd           the gradient step's forward combination, ``StackMerger.merge_vector`` (one pass)
  grad_bwd           the gradient step's backward projection ∂L/∂a = S·∂L/∂θ, ``StackMerger.project`` (one pass)
  host_copy_stager   the host half of streaming a stack that does not fit the GPU, as the device path does it now:
                     each K×cols block copied into one reused buffer by ``lcsc.merge.linear._Stager`` (pinned for
                     CUDA; run here with device "cpu", where its ``.to`` is a no-op, so this times the buffer copy)
  host_copy_fresh    the same before the stager (the "before" figure): each block made contiguous in a freshly
                     allocated tensor (free, so meaningless, when the stack is one 64 MB chunk, as at --quick size)

each in GB/s of stack bytes, cold (the stack file dropped from the page cache with
``posix_fadvise(POSIX_FADV_DONTNEED)`` before the pass; residency checked with ``mincore``) and warm (the file in the
page cache, best of ``--repeats``), against this machine's memory-read bandwidth (``torch.sum`` over a RAM buffer) and
disk-read bandwidth (a cold sequential ``readinto`` of each stack file, right after writing it and again after the cold
passes). Warm what-if passes (``alt_*``, not the project's code) measure the changes the numbers point at: the
projection as float32 GEMVs, bfloat16 widened by a 16-bit shift. Merged rows and projections are checked against a
float64 numpy reference on sampled columns, and the stager's blocks against the stack's. Only one stack file exists at
a time (``--max-gb`` caps it, default 24 GB).

From the largest rows' rates it prints a cost model: the cost per Alg. 1 candidate and per gradient step for the SD 1.5
UNet (859.5 M parameters) and the SDXL UNet (2.567 B) at K = 50 and 100, with the stack on an NVMe disk (assumed
``--nvme-gbps``), in host RAM (measured here) and on an 80 GB GPU (``--gpu-gbps`` estimated; streamed from host RAM
where it does not fit: through the stager, ``gpu``, and as before it, ``gpu_before``), plus the stack-pass cost above
which the gradient search stops being cheaper than Alg. 1.
Sampling and feature costs are parameters (estimates, not measured here; docs/guide/scale.md gives their sources).

Run (from the repository root):
  .venv/bin/python benchmarks/scale.py --quick                     # seconds: K=8, P=2M (64 MB) in a temp dir
  .venv/bin/python benchmarks/scale.py --sizes-gb 4 --bf16-sizes-gb 4   # medium: 4 GB float32, 2 GB bfloat16
  .venv/bin/python benchmarks/scale.py --results runs/scale/rows.jsonl   # the full run (float32 1, 4, 16 GB and
      # bfloat16 0.5 GB), ≤ ~8 min; resumable: each finished row is appended there, and a rerun skips it (a row
      # from before the stager gets its stack rewritten and only the two host copies timed: ~2 min for the full run)
  .venv/bin/python benchmarks/scale.py --results runs/scale/rows.jsonl --nfe 4 --sd15-step-ms 20   # re-cost only
Each row's passes are printed as they finish; the last line printed is one JSON object of the figures (``*_gbps``,
``disk_gbps``, ``largest_stack_gb``, the cost table under ``cost``, ``break_even``, ``check_ok``). Temporary files go
to a folder under ``--workdir`` (default: the system temp dir) that is removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import mmap
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.checkpoints.build import STORAGE_DTYPES, npy_header, numpy_view
from lcsc.checkpoints.cache import map_matrix
from lcsc.checkpoints.layout import Layout, TensorSpec
from lcsc.merge import StackMerger, merge, merge_many
from lcsc.merge.linear import DEFAULT_CHUNK_BYTES, _Stager

GB = 1e9
SHORT = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
PASSES = ("merge", "merge_many8", "grad_fwd", "grad_bwd")
HOST_COPIES = ("host_copy_fresh", "host_copy_stager")  # the GPU stream's host copy: before the stager, now
WARM_ONLY = (*HOST_COPIES, "alt_grad_bwd_sgemv", "alt_merge_shift")  # passes timed warm only
LEGACY = {"gpu_stream_gather": "host_copy_fresh"}  # a rows.jsonl name from before the stager, same measurement
GENERATION = 8  # Alg. 1's generation_size (lcsc.search.config.SearchConfig)
CHECK_WIDTH = 4096  # columns per sampled window of the correctness check
WARM_BUDGET_S = 4.0  # a warm pass is repeated (best of --repeats) only while its repeats took less than this

# (name, parameters P) of the cost model's networks; their sampling and feature costs are command-line parameters
# (estimates, not measured here: docs/guide/scale.md gives their sources)
MODELS = {"sd15": ("SD 1.5 UNet", 859.5e6), "sdxl": ("SDXL UNet", 2.567e9)}


# ---------------------------------------------------------------------------------------------------------------
# Page cache: drop a file's pages, read how much of it is resident


def drop_cache(path: Path) -> bool:
    """Flush ``path`` and ask the kernel to drop its clean pages (no root needed); False where unsupported.
    Pages mapped by a live mapping are not dropped, so close every stack on the file first."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


_LIBC: list = []


def resident_fraction(path: Path) -> float | None:
    """The fraction of ``path``'s pages in the page cache (``mincore`` on a fresh read-only mapping), or None."""
    if not _LIBC:
        try:
            _LIBC.append(ctypes.CDLL(None, use_errno=True).mincore)
        except (OSError, AttributeError):
            _LIBC.append(None)
    mincore = _LIBC[0]
    size = path.stat().st_size
    if mincore is None or size == 0:
        return None
    with open(path, "rb") as fh:
        m = mmap.mmap(fh.fileno(), size, prot=mmap.PROT_READ)
    try:
        view = np.frombuffer(m, dtype=np.uint8)
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = np.zeros(pages, dtype=np.uint8)
        rc = mincore(ctypes.c_void_p(view.ctypes.data), ctypes.c_size_t(size), vec.ctypes.data_as(ctypes.c_void_p))
        frac = float((vec & 1).mean()) if rc == 0 else None
        del view
    finally:
        m.close()
    return frac


def raw_read_gbps(path: Path, chunk: int = 16 << 20) -> float:
    """Sequential read of the whole file with ``readinto`` (no page-cache bypass): GB/s."""
    buf = memoryview(bytearray(chunk))
    t0 = time.perf_counter()
    n = 0
    with open(path, "rb", buffering=0) as fh:
        while got := fh.readinto(buf):
            n += got
    return n / (time.perf_counter() - t0) / GB


# ---------------------------------------------------------------------------------------------------------------
# Machine figures


def memory_bandwidth(nbytes: int, repeats: int) -> dict:
    """Memory-read GB/s (``torch.sum`` over a float32 RAM buffer, as benchmarks/merge.py) and copy GB/s (read +
    write bytes of ``numpy.copyto``), best of ``repeats``."""
    buf = torch.ones(nbytes // 4, dtype=torch.float32)
    dst = np.empty(buf.numel(), dtype=np.float32)
    torch.sum(buf)
    np.copyto(dst, buf.numpy())
    read = best_time(lambda: torch.sum(buf), repeats)
    copy = best_time(lambda: np.copyto(dst, buf.numpy()), repeats)
    return {"mem_gbps": nbytes / read / GB, "mem_copy_gbps": 2 * nbytes / copy / GB, "mem_buffer_gb": nbytes / GB}


def best_time(fn: Callable[[], object], repeats: int, budget_s: float | None = None) -> float:
    """Best wall time of up to ``repeats`` calls; no further call once ``budget_s`` seconds have been spent."""
    best, spent = float("inf"), 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        best, spent = min(best, t), spent + t
        if budget_s is not None and spent > budget_s:
            break
    return best


# ---------------------------------------------------------------------------------------------------------------
# Synthetic stacks in the stack cache's format


def write_stack(path: Path, K: int, P: int, storage: str) -> float:  # noqa: N803 - the paper's symbols
    """Write a K×P .npy stack in ``storage`` dtype (the cache's header, :func:`npy_header`) and fsync it; seconds.
    Rows are shifted windows of one random block, so every row differs and nothing is sparse."""
    dtype = STORAGE_DTYPES[storage]
    block_len = min(8 << 20, P + 4099)
    block = numpy_view(torch.randn(block_len, generator=torch.Generator().manual_seed(0)).to(dtype))
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        npy_header(fh, dtype, (K, P))
        for k in range(K):
            pos, left = (k * 104_729) % block_len, P
            while left:
                n = min(left, block_len - pos)
                fh.write(memoryview(block[pos : pos + n]).cast("B"))
                left, pos = left - n, 0
        fh.flush()
        os.fsync(fh.fileno())
    return time.perf_counter() - t0


def open_stack(path: Path, K: int, P: int, storage: str) -> CheckpointStack:  # noqa: N803
    """The synthetic file as a CheckpointStack, memory-mapped the way a reused stack cache is (``map_matrix``)."""
    matrix = map_matrix(path, STORAGE_DTYPES[storage])
    assert tuple(matrix.shape) == (K, P), matrix.shape
    layout = Layout((TensorSpec("weight", (P,), "float32", 0, P),), P)
    return CheckpointStack(
        paths=[path.parent / f"synthetic-{k}" for k in range(K)], steps=list(range(1, K + 1)),
        step_origins=["synthetic"] * K, metadata=[{} for _ in range(K)], hashes=[f"{k:064x}" for k in range(K)],
        layout=layout, matrix=matrix, extras={}, cache_path=path, cache_state="synthetic",
    )  # fmt: skip


def check_windows(P: int) -> np.ndarray:  # noqa: N803
    """Sampled columns of the correctness check: a window at the start, the middle and the end of the row."""
    w = min(CHECK_WIDTH, P)
    return np.unique(np.concatenate([np.arange(w), P // 2 + np.arange(w) - w // 2, P - w + np.arange(w)]) % P)


def stored_columns(path: Path, storage: str, cols: np.ndarray) -> np.ndarray:
    """The stored values of ``cols`` (K × len(cols)) as float64, read independently of lcsc (numpy's memmap)."""
    raw = np.load(path, mmap_mode="r")
    part = np.ascontiguousarray(raw[:, cols])
    del raw
    if storage == "bfloat16":
        return torch.from_numpy(part).view(torch.bfloat16).to(torch.float64).numpy()
    return part.astype(np.float64)


def relative_error(got: np.ndarray, want: np.ndarray, scale: np.ndarray) -> float:
    """max |got − want| / (K·eps32·scale): ≤ 1 is within a float32 summation bound (scale = Σ|aₖ||Sₖₚ|)."""
    return float(np.max(np.abs(got - want) / np.maximum(scale, 1e-30)))


# ---------------------------------------------------------------------------------------------------------------
# One row: a stack of K×P in one dtype, every pass cold and warm


def measure_row(folder: Path, K: int, P: int, storage: str, args: argparse.Namespace) -> dict:  # noqa: N803
    """Write the stack, time every pass cold and warm, check the results, delete the file; the row's figures."""
    label = f"{SHORT[storage]} K={K} P={P:,}"
    path = folder / f"stack-{storage}-{K}x{P}.npy"
    nbytes = K * P * BYTES[storage]
    rng = np.random.default_rng(K + P)
    a = rng.standard_normal(K) / math.sqrt(K) + 1.0 / K
    A = rng.standard_normal((GENERATION, K)) / math.sqrt(K) + 1.0 / K
    cols = check_windows(P)
    g = torch.zeros(P, dtype=torch.float32)  # ∂L/∂θ: zero off the checked columns (the GEMV's cost is the same)
    g[torch.from_numpy(cols)] = torch.from_numpy(rng.standard_normal(len(cols)).astype(np.float32))
    row: dict = {"key": f"K{K}-P{P}-{storage}", "K": K, "P": P, "storage": storage, "stack_gb": nbytes / GB}
    try:
        write_s = write_stack(path, K, P, storage)
        row["write_gbps"] = nbytes / write_s / GB
        print(f"[{label}] {nbytes / GB:.3f} GB written in {write_s:.1f} s ({row['write_gbps']:.2f} GB/s, fsync'd)",
              flush=True)
        dropped = drop_cache(path)
        row["resident_after_drop"] = resident_fraction(path)
        row["disk_gbps"] = raw_read_gbps(path)
        print(f"[{label}] disk: cold sequential read {row['disk_gbps']:.2f} GB/s (resident before: "
              f"{fmt_frac(row['resident_after_drop'])}; fadvise {'ok' if dropped else 'unavailable'})", flush=True)
        outputs: dict = {}

        def passes(stack: CheckpointStack) -> dict[str, Callable[[], object]]:
            merger = StackMerger(stack)
            return {
                "merge": lambda: outputs.__setitem__("merge", merge(stack, a, as_vector=True)),
                "merge_many8": lambda: outputs.__setitem__("merge_many8", merge_many(stack, A)),
                "grad_fwd": lambda: outputs.__setitem__("grad_fwd", merger.merge_vector(a[None])),
                "grad_bwd": lambda: outputs.__setitem__("grad_bwd", merger.project(g)),
                # the CPU half of streaming the stack to a GPU it does not fit (merge_many / project_gradient on
                # cuda): each K×cols column block copied to host memory before its copy over PCIe; before and now
                **host_copy_passes(stack.matrix),
                # what-if passes, warm only: the projection as float32 GEMVs; bfloat16 widened by a shift
                "alt_grad_bwd_sgemv": lambda: outputs.__setitem__("alt_grad_bwd_sgemv", sgemv_project(stack.matrix, g)),
                **({"alt_merge_shift": lambda: outputs.__setitem__("alt_merge_shift", shift_merge(stack.matrix, a))}
                   if storage == "bfloat16" else {}),
            }

        # cold: each pass on a freshly opened stack whose file was just dropped; grad_bwd runs right after
        # grad_fwd as in a gradient step (it finds the file in the page cache when the file fits there)
        for kinds in (("merge",), ("merge_many8",), ("grad_fwd", "grad_bwd")):
            drop_cache(path)
            before = resident_fraction(path)
            stack = open_stack(path, K, P, storage)
            fns = passes(stack)
            for i, kind in enumerate(kinds):
                t0 = time.perf_counter()
                fns[kind]()
                t = time.perf_counter() - t0
                name = f"{kind}_cold" if i == 0 else f"{kind}_after_fwd"
                row[f"{name}_s"], row[f"{name}_gbps"] = t, nbytes / t / GB
                row[f"{name}_resident_before"] = before if i == 0 else resident_fraction(path)
                print(f"[{label}] {name:<34} {t:8.3f} s {nbytes / t / GB:8.2f} GB/s  (resident before: "
                      f"{fmt_frac(row[f'{name}_resident_before'])})", flush=True)
            del stack, fns  # unmapped now (no reference cycles): the next drop_cache can evict every page
        drop_cache(path)
        row["disk_reread_gbps"] = raw_read_gbps(path)  # what the cold passes compete with (a VM host may cache)
        print(f"[{label}] disk: cold sequential re-read {row['disk_reread_gbps']:.2f} GB/s", flush=True)
        # warm: one stack, a warm-up merge, then each pass best of --repeats (once when the file does not stay cached)
        stack = open_stack(path, K, P, storage)
        fns = passes(stack)
        fns["merge"]()
        warm_res = resident_fraction(path)
        repeats = args.repeats if warm_res is None or warm_res >= 0.9 else 1
        row["warm_resident"] = warm_res
        for kind in fns:
            t = best_time(fns[kind], repeats, budget_s=WARM_BUDGET_S)
            row[f"{kind}_warm_s"], row[f"{kind}_warm_gbps"] = t, nbytes / t / GB
            print(f"[{label}] {kind + '_warm':<34} {t:8.3f} s {nbytes / t / GB:8.2f} GB/s  (resident: "
                  f"{fmt_frac(warm_res)}, best of up to {repeats})", flush=True)
        row["host_copy_stager_exact"] = stager_exact(stack.matrix)
        del stack, fns
        row.update(check_outputs(path, storage, a, A, g, cols, outputs))
        print(f"[{label}] check on {len(cols)} sampled columns: error / float32 bound = {row['check_ratio']:.3g} "
              f"({'ok' if row['check_ok'] else 'FAIL'})", flush=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return row


def measure_host_copies(folder: Path, K: int, P: int, storage: str, args: argparse.Namespace) -> dict:  # noqa: N803
    """For a row measured before the stager existed: write its stack again, warm it, and time the GPU stream's host
    copy both ways back to back (fresh tensors, then the stager), so the two share the machine's present load; delete
    the file. The figures to add to the row (they replace its earlier ``host_copy_fresh``)."""
    label = f"{SHORT[storage]} K={K} P={P:,}"
    path = folder / f"stack-{storage}-{K}x{P}.npy"
    nbytes = K * P * BYTES[storage]
    out: dict = {"host_copy_remeasured": time.strftime("%Y-%m-%d %H:%M")}
    try:
        write_s = write_stack(path, K, P, storage)
        print(f"[{label}] host copies only (row from before the stager): {nbytes / GB:.3f} GB written in "
              f"{write_s:.1f} s", flush=True)
        stack = open_stack(path, K, P, storage)
        merge(stack, np.full(K, 1.0 / K), as_vector=True)  # warm-up: the file in the page cache
        warm_res = resident_fraction(path)
        repeats = args.repeats if warm_res is None or warm_res >= 0.9 else 1
        out["host_copy_resident"] = warm_res
        for kind, fn in host_copy_passes(stack.matrix).items():
            t = best_time(fn, repeats, budget_s=WARM_BUDGET_S)
            out[f"{kind}_warm_s"], out[f"{kind}_warm_gbps"] = t, nbytes / t / GB
            print(f"[{label}] {kind + '_warm':<34} {t:8.3f} s {nbytes / t / GB:8.2f} GB/s  (resident: "
                  f"{fmt_frac(warm_res)}, best of up to {repeats})", flush=True)
        out["host_copy_stager_exact"] = stager_exact(stack.matrix)
        del stack
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return out


def check_outputs(path: Path, storage: str, a, A, g: torch.Tensor, cols: np.ndarray, out: dict) -> dict:  # noqa: N803
    """Merged θ (merge, merge_many8, grad_fwd, alt_merge_shift) and the projections (grad_bwd, alt_grad_bwd_sgemv)
    against a float64 numpy reference on ``cols``."""
    S = stored_columns(path, storage, cols)
    K = S.shape[0]
    eps = K * float(np.finfo(np.float32).eps)
    ratios = {}
    for name, coeffs in (("merge", a[None]), ("merge_many8", A), ("grad_fwd", a[None]), ("alt_merge_shift", a[None])):
        if name in out:
            got = np.asarray(out[name]).reshape(len(coeffs), -1)[:, cols].astype(np.float64)
            ratios[name] = relative_error(got, coeffs @ S, eps * (np.abs(coeffs) @ np.abs(S)))
    g_cols = g.numpy()[cols].astype(np.float64)
    for name in ("grad_bwd", "alt_grad_bwd_sgemv"):
        got = np.asarray(out[name]).reshape(-1)
        ratios[name] = relative_error(got, S @ g_cols, eps * (np.abs(S) @ np.abs(g_cols)))
    worst = max(ratios, key=ratios.get)
    return {"check_ratio": ratios[worst], "check_worst": worst, "check_ok": bool(ratios[worst] <= 1.0)}


# ---------------------------------------------------------------------------------------------------------------
# What-if passes (not the project's code path): the changes the measurements point at, measured warm


def _chunks(matrix: torch.Tensor, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
    K, P = matrix.shape  # noqa: N806
    cols = max(1024, chunk_bytes // (K * matrix.element_size()))
    return [(c0, min(P, c0 + cols)) for c0 in range(0, P, cols)], cols


def _f32_blocks(matrix: torch.Tensor):
    """float32 column blocks of the stack: views for float32; bfloat16 widened by a 16-bit shift into one buffer."""
    blocks, cols = _chunks(matrix)
    if matrix.dtype == torch.float32:
        m = matrix.numpy()
        for c0, c1 in blocks:
            yield c0, c1, m[:, c0:c1]
        return
    bits = matrix.view(torch.int16).numpy().view(np.uint16)
    buf = np.empty((matrix.shape[0], cols), dtype=np.uint32)
    for c0, c1 in blocks:
        out = buf[:, : c1 - c0]
        np.left_shift(bits[:, c0:c1], 16, out=out, dtype=np.uint32)
        yield c0, c1, out.view(np.float32)


def fresh_blocks(matrix: torch.Tensor) -> None:
    """The device path before the stager: ``Tensor.to("cuda")`` of each non-contiguous K×cols block first makes a
    contiguous host copy in a fresh tensor (the copy over PCIe that follows is not measured here)."""
    blocks, _ = _chunks(matrix)
    for c0, c1 in blocks:
        matrix[:, c0:c1].contiguous()


def stager_blocks(matrix: torch.Tensor) -> None:
    """The device path now: every K×cols block through the project's ``_Stager`` (one reused host buffer, pinned for
    CUDA), here with device "cpu", where its ``.to`` returns the buffer itself: the host copy alone."""
    blocks, cols = _chunks(matrix)
    stage = _Stager(matrix, cols, torch.device("cpu"))
    for c0, c1 in blocks:
        stage(c0, c1)


def host_copy_passes(matrix: torch.Tensor) -> dict[str, Callable[[], object]]:
    return {"host_copy_fresh": lambda: fresh_blocks(matrix), "host_copy_stager": lambda: stager_blocks(matrix)}


def stager_exact(matrix: torch.Tensor) -> bool:
    """The stager's first and last (narrower) blocks equal the stack's columns, bit for bit."""
    blocks, cols = _chunks(matrix)
    stage = _Stager(matrix, cols, torch.device("cpu"))
    return all(torch.equal(stage(c0, c1), matrix[:, c0:c1]) for c0, c1 in {blocks[0], blocks[-1]})


def sgemv_project(matrix: torch.Tensor, g: torch.Tensor) -> np.ndarray:
    """S·g as float32 GEMVs per chunk (numpy's BLAS, like the forward merge) summed in float64: (K,)."""
    gn = g.numpy()
    out = np.zeros(matrix.shape[0])
    for c0, c1, block in _f32_blocks(matrix):
        out += block @ gn[c0:c1]
    return out


def shift_merge(matrix: torch.Tensor, a: np.ndarray) -> np.ndarray:
    """aᵀS for a bfloat16 stack, widened to float32 by a 16-bit shift instead of ``Tensor.to``: (P,)."""
    a32 = np.asarray(a, dtype=np.float32)[None]
    out = np.empty((1, matrix.shape[1]), dtype=np.float32)
    for c0, c1, block in _f32_blocks(matrix):
        np.matmul(a32, block, out=out[:, c0:c1])
    return out[0]


def fmt_frac(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


# ---------------------------------------------------------------------------------------------------------------
# Rates and the cost model


def rates(rows: list[dict], storage: str) -> dict | None:
    """Pass rates (GB/s of stack bytes) of one dtype: warm from the largest row whose file stayed cached, cold from
    the largest row, and each cold pass's I/O efficiency ``eta`` against a raw sequential read of that row: the cold
    pass modelled as its warm (compute) time plus a read at eta × disk speed, one after the other."""
    mine = sorted((r for r in rows if r["storage"] == storage), key=lambda r: r["stack_gb"])
    if not mine:
        return None
    cached = [r for r in mine if r.get("warm_resident") is None or r["warm_resident"] >= 0.9] or mine
    warm, cold = cached[-1], mine[-1]
    disk = cold.get("disk_reread_gbps", cold["disk_gbps"])  # the read the cold passes ran beside
    out = {"warm_row_gb": warm["stack_gb"], "cold_row_gb": cold["stack_gb"], "disk_gbps": disk}
    for kind in PASSES:
        out[f"{kind}_warm"] = warm[f"{kind}_warm_gbps"]
        cold_kind = "grad_fwd" if kind == "grad_bwd" else kind  # the projection reads the stack chunk by chunk too
        out[f"{kind}_cold"] = cold[f"{kind}_after_fwd_gbps" if kind == "grad_bwd" else f"{kind}_cold_gbps"]
        compute = 1 / (cold if cold in cached else warm)[f"{cold_kind}_warm_gbps"]  # s per GB
        io = 1 / cold[f"{cold_kind}_cold_gbps"] - compute
        out[f"{kind}_eta"] = min(1.0, max(0.05, (1 / disk) / io)) if io > 0 else 1.0
    for kind in WARM_ONLY:
        # from the largest cached row that has it (a row whose host copies could not be re-measured lacks the stager)
        have = [r for r in cached if f"{kind}_warm_gbps" in r]
        if have:
            out[f"{kind}_warm"] = have[-1][f"{kind}_warm_gbps"]
    return out


MEDIA = {  # where the stack is read from, and what merges it
    "nvme": "NVMe, CPU merge",
    "ram": "host RAM, CPU merge",
    "gpu_before": "80 GB GPU, streamed as before the stager (a fresh host tensor per block)",
    "gpu": "80 GB GPU, streamed through the stager (one reused host buffer)",
    "gpu_pcie": "GPU, PCIe-bound stream",
}


def pass_seconds(nbytes: float, r: dict, kind: str, medium: str, args: argparse.Namespace) -> tuple[float, bool]:
    """Seconds of one ``kind`` pass over ``nbytes`` of stack on ``medium``, and whether it streams to the GPU.

    ram: nbytes / warm rate (measured).  nvme: nbytes / warm rate + nbytes / (eta × --nvme-gbps) (eta measured).
    gpu (the project's device path): nbytes / --gpu-gbps (estimate) when nbytes <= 0.8 × --gpu-mem-gb
    (StackMerger's residency rule), else streamed from host RAM chunk by chunk: nbytes / stager copy rate (measured
    on the CPU) + nbytes / --pcie-gbps (assumed), one after the other (the stager's copies are blocking); 16-bit
    stacks stream half the bytes, widened on the GPU.  gpu_before: the same with the host copy into a fresh tensor
    per block (measured), at the same assumed PCIe rate.  gpu_pcie: as gpu, but a stream bound by PCIe alone (the
    host copy and the PCIe copy overlapped with each other and the GEMM, e.g. two buffers; not built): an estimate."""
    if medium == "ram":
        return nbytes / (r[f"{kind}_warm"] * GB), False
    if medium == "nvme":
        return nbytes / (r[f"{kind}_warm"] * GB) + nbytes / (r[f"{kind}_eta"] * args.nvme_gbps * GB), False
    if nbytes <= 0.8 * args.gpu_mem_gb * GB:
        return nbytes / (args.gpu_gbps * GB), False
    if medium == "gpu_pcie":
        return nbytes / (args.pcie_gbps * GB), True
    copy = r["host_copy_fresh_warm" if medium == "gpu_before" else "host_copy_stager_warm"]
    return nbytes / (copy * GB) + nbytes / (args.pcie_gbps * GB), True


def sample_seconds(model: str, nfe: float, args: argparse.Namespace) -> float:
    """Seconds to draw and featurize one sample (forward only): NFE sampler steps + decode and features."""
    if model == "sd15":
        step_ms, feat_ms = args.sd15_step_ms, args.sd15_feat_ms
    else:
        step_ms, feat_ms = args.sdxl_step_ms, args.sdxl_feat_ms
    return (nfe * step_ms + feat_ms) / 1e3


def cost_model(all_rates: dict, args: argparse.Namespace) -> dict:
    """Per Alg. 1 candidate and per gradient step, for each model × K × dtype × medium; totals for a search."""
    table = {}
    for model, (_, P) in MODELS.items():  # noqa: N806
        s_a = sample_seconds(model, args.nfe, args)
        xfer = P * 4 / (args.pcie_gbps * GB)  # θ up (and ∂L/∂θ down) when the CPU merges for a GPU network
        for K in (50, 100):  # noqa: N806
            for storage, r in all_rates.items():
                nbytes = K * P * BYTES[storage]
                entry = {"stack_gb": round(nbytes / GB, 1), "gpu_resident": nbytes <= 0.8 * args.gpu_mem_gb * GB}
                for medium in MEDIA:
                    t_pass, streamed = pass_seconds(nbytes, r, "merge", medium, args)
                    t_many, _ = pass_seconds(nbytes, r, "merge_many8", medium, args)
                    t_fwd, _ = pass_seconds(nbytes, r, "grad_fwd", medium, args)
                    t_bwd, _ = pass_seconds(nbytes, r, "grad_bwd", medium, args)
                    host = medium in ("nvme", "ram")  # a GPU merge (resident or streamed) leaves θ there
                    cand = t_many / GENERATION + (xfer if host else 0.0) + args.samples * s_a
                    step = t_fwd + t_bwd + (2 * xfer if host else 0.0) + args.batch * args.grad_factor * s_a
                    alg1 = args.alg1_evals * cand
                    grad = args.grad_evals * cand + args.grad_steps * step
                    entry[medium] = {"pass_s": round(t_pass, 3), "streamed": streamed,
                                     "candidate_s": round(cand, 2), "step_s": round(step, 2),
                                     "step_pass_share": round((t_fwd + t_bwd) / step, 4),
                                     "alg1_h": round(alg1 / 3600, 2), "grad_h": round(grad / 3600, 2)}
                table[f"{model}_K{K}_{SHORT[storage]}"] = entry
    return table


def break_even(all_rates: dict, args: argparse.Namespace) -> dict:
    """The stack-pass seconds above which the gradient search costs more than Alg. 1 at the budgets given:
    (E − E_g)·(ρ·t/8 + N·s) = S·(2t + B·f·s)  ⇒  t* = s·((E − E_g)·N − S·B·f) / (2S − (E − E_g)·ρ/8),
    s = one sample's forward cost, ρ = merge_many8 pass / merge pass; ≤ 0: the gradient never costs less."""
    r = all_rates.get("float32") or next(iter(all_rates.values()))
    rho = r["merge_warm"] / r["merge_many8_warm"]
    out = {"rho_many8": round(rho, 3)}
    for evals in sorted({args.alg1_evals, 95, 65}):
        extra = evals - args.grad_evals
        num = extra * args.samples - args.grad_steps * args.batch * args.grad_factor
        den = 2 * args.grad_steps - extra * rho / GENERATION
        per_sample = num / den if den > 0 else float("inf")
        row = {"passes_per_sample": round(per_sample, 2)}
        for model in MODELS:
            for nfe in (1, 2, 4, args.nfe):
                row[f"{model}_nfe{nfe:g}_s"] = round(per_sample * sample_seconds(model, nfe, args), 2)
        out[f"alg1_evals_{evals}"] = row
    return out


def print_cost(table: dict, be: dict, args: argparse.Namespace) -> None:
    print(f"\ncost model: NFE {args.nfe:g}; Alg. 1 candidate = 1/8 of a merge_many8 pass + {args.samples} samples; "
          f"gradient step = forward + backward pass + {args.batch} samples × {args.grad_factor:g} forward-equivalents; "
          f"a search = Alg. 1 {args.alg1_evals} candidates, or gradient {args.grad_evals} candidates + "
          f"{args.grad_steps} steps. NVMe {args.nvme_gbps:g} GB/s and PCIe {args.pcie_gbps:g} GB/s assumed, GPU "
          f"{args.gpu_gbps:g} GB/s estimated; CPU rates measured here.")
    print("media: " + "; ".join(f"{m} = {d}" for m, d in MEDIA.items()) + " ('s': streamed from host RAM, the stack "
          f"does not fit 0.8 × {args.gpu_mem_gb:g} GB)")
    cols = "".join(f"{m:>11}" for m in MEDIA)
    for title, key, fmt in (("stack pass, s", "pass_s", "{:.2f}"), ("Alg. 1 candidate, s", "candidate_s", "{:.0f}"),
                            ("gradient step, s", "step_s", "{:.0f}"), ("passes' share of a step", "step_pass_share",
                                                                         "{:.1%}")):
        print(f"\n{title:<24}{'GB':>7}{cols}")
        for name, e in table.items():
            vals = "".join(f"{fmt.format(e[m][key]) + ('s' if key == 'pass_s' and e[m]['streamed'] else ''):>11}"
                           for m in MEDIA)
            print(f"{name:<24}{e['stack_gb']:>7.1f}{vals}")
    print(f"\n{'whole search, h: Alg. 1 / gradient':<38}" + "".join(f"{m:>14}" for m in MEDIA))
    for name, e in table.items():
        print(f"{name:<38}" + "".join(f"{e[m]['alg1_h']:>7.1f}/{e[m]['grad_h']:<6.1f}" for m in MEDIA))
    print(f"\nbreak-even stack pass (the gradient search costs more than Alg. 1 above it; ρ = merge_many8 / merge "
          f"= {be['rho_many8']}):")
    for key, row in be.items():
        if key.startswith("alg1_evals"):
            print(f"  {key}: t* = {row['passes_per_sample']} × one sample's cost: " + ", ".join(
                f"{k[:-2]} {v:g} s" for k, v in row.items() if k.endswith("_s")))


# ---------------------------------------------------------------------------------------------------------------
# Driver


def load_rows(path: Path | None) -> list[dict]:
    """The rows of a results file, in first-seen order; a later line with a row's key adds to (and overrides) it.
    Rows from before the stager get their fresh-tensor host copy under its present name (``LEGACY``)."""
    if path is None or not path.is_file():
        return []
    rows: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            r = json.loads(line)
            if isinstance(r, dict) and "key" in r:
                rows.setdefault(r["key"], {}).update(r)
    for r in rows.values():
        for old, new in LEGACY.items():
            for unit in ("s", "gbps"):
                if f"{old}_warm_{unit}" in r:
                    r.setdefault(f"{new}_warm_{unit}", r[f"{old}_warm_{unit}"])
    return list(rows.values())


def plan(args: argparse.Namespace) -> list[tuple[int, int, str]]:
    """(K, P, storage) of each row: P from each float32 size at K; every dtype at that K×P."""
    out = []
    for storage, sizes in (("float32", args.sizes_gb), ("bfloat16", args.bf16_sizes_gb)):
        out += [(args.K, max(CHECK_WIDTH, int(size * GB / (args.K * 4))), storage) for size in sizes]
    return out


def headline(rows: list[dict], mem: dict, all_rates: dict, table: dict, be: dict) -> dict:
    out = {k: round(v, 3) for k, v in mem.items()}
    largest = max(rows, key=lambda r: (r["stack_gb"], r["storage"] == "float32"))
    out["disk_gbps"] = round(largest["disk_gbps"], 3)  # the first read of the largest stack after writing it
    out["disk_gbps_max"] = round(max(r["disk_gbps"] for r in rows), 3)
    if "disk_reread_gbps" in largest:
        out["disk_reread_gbps"] = round(largest["disk_reread_gbps"], 3)
    drops = [r["resident_after_drop"] for r in rows if r.get("resident_after_drop") is not None]
    out["fadvise_drops_cache"] = bool(drops) and max(drops) < 0.05
    out["largest_stack_gb"] = round(max(r["stack_gb"] for r in rows), 3)
    for storage, r in all_rates.items():
        s = SHORT[storage]
        for kind in PASSES:
            for how in ("warm", "cold"):
                name = "after_fwd" if (kind, how) == ("grad_bwd", "cold") else how
                out[f"{kind}_gbps_{s}_{name}"] = round(r[f"{kind}_{how}"], 3)
        for kind in WARM_ONLY:
            if f"{kind}_warm" in r:
                out[f"{kind}_gbps_{s}_warm"] = round(r[f"{kind}_warm"], 3)
        out[f"eta_merge_{s}"] = round(r["merge_eta"], 3)
    if "float32" in all_rates:
        out["merge_gbps"] = out["merge_gbps_f32_warm"]
        out["grad_fwd_gbps"], out["grad_bwd_gbps"] = out["grad_fwd_gbps_f32_warm"], out["grad_bwd_gbps_f32_warm"]
        for kind in HOST_COPIES:
            out[f"{kind}_gbps"] = out[f"{kind}_gbps_f32_warm"]
    out["check_ok"] = all(r["check_ok"] and r.get("host_copy_stager_exact", True) for r in rows)
    out["rows"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                    if k in ("key", "stack_gb", "disk_gbps", "warm_resident", "check_ratio", "host_copy_remeasured")
                    or k.endswith("_gbps")} for r in rows]
    out["cost"] = table
    out["break_even"] = be
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--K", type=int, default=50, help="checkpoints per stack (default 50)")
    p.add_argument("--sizes-gb", default="1,4,16", help="float32 stack sizes in GB, comma-separated (default 1,4,16)")
    p.add_argument("--bf16-sizes-gb", default="1",
                   help="float32 sizes whose K×P is also measured as a bfloat16 stack (half the bytes; default 1: "
                        "its CPU passes are compute-bound, so larger sizes only take longer); '' for none")
    p.add_argument("--repeats", type=int, default=3, help="warm timings, best taken (default 3)")
    p.add_argument("--max-gb", type=float, default=24.0,
                   help="largest stack file allowed (default 24: leave the shared disk room)")
    p.add_argument("--workdir", type=Path, default=None, help="where the temp folder goes (default: system temp)")
    p.add_argument("--results", type=Path, default=None,
                   help="JSON-lines file of finished rows: appended to as rows finish, and rows already in it skipped")
    p.add_argument("--quick", action="store_true", help="smoke run: K=8, one 64 MB float32 size, 2 repeats")
    g = p.add_argument_group("cost model (estimates: see docs/guide/scale.md)")
    g.add_argument("--nvme-gbps", type=float, default=3.0, help="assumed NVMe read GB/s (default 3)")
    g.add_argument("--gpu-gbps", type=float, default=2000.0,
                   help="estimated GB/s of a GEMV-like pass over a GPU-resident stack (default 2000: H100)")
    g.add_argument("--gpu-mem-gb", type=float, default=80.0, help="GPU memory in GB (default 80)")
    g.add_argument("--pcie-gbps", type=float, default=25.0, help="assumed host-to-GPU GB/s (default 25)")
    g.add_argument("--nfe", type=float, default=25, help="sampler steps per sample (default 25)")
    g.add_argument("--samples", type=int, default=1000, help="samples per Alg. 1 candidate (default 1000)")
    g.add_argument("--batch", type=int, default=256, help="samples per gradient step (default 256)")
    g.add_argument("--grad-factor", type=float, default=4.0,
                   help="forward-equivalents per gradient-step sample (default 4: forward + backward + recompute)")
    g.add_argument("--alg1-evals", type=int, default=65, help="Alg. 1 evaluations per search (default 65, DM)")
    g.add_argument("--grad-evals", type=int, default=24,
                   help="candidate evaluations of the gradient search: initial population + guard (default 24)")
    g.add_argument("--grad-steps", type=int, default=40, help="gradient steps (default 40)")
    g.add_argument("--sd15-step-ms", type=float, default=39.0,
                   help="SD 1.5 ms per image per sampler step, CFG included (default 39: A100, batch 1)")
    g.add_argument("--sdxl-step-ms", type=float, default=110.0,
                   help="SDXL ms per image per sampler step, CFG included (default 110: A100, batch 1)")
    g.add_argument("--sd15-feat-ms", type=float, default=10.0, help="SD 1.5 decode + features ms/image (default 10)")
    g.add_argument("--sdxl-feat-ms", type=float, default=40.0, help="SDXL decode + features ms/image (default 40)")
    args = p.parse_args(argv)
    for name in ("sizes_gb", "bf16_sizes_gb"):
        try:
            setattr(args, name, [float(x) for x in str(getattr(args, name)).split(",") if x.strip()])
        except ValueError:
            p.error(f"--{name.replace('_', '-')} {getattr(args, name)!r}: expected numbers such as 1,4,16")
    if args.quick:
        args.K, args.sizes_gb, args.bf16_sizes_gb, args.repeats = 8, [0.064], [0.064], 2
    if args.K < 2 or args.repeats < 1 or not args.sizes_gb or min(args.sizes_gb + args.bf16_sizes_gb) <= 0:
        p.error("--K must be >= 2, --repeats >= 1, --sizes-gb not empty, sizes > 0")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rows = load_rows(args.results)
    done = {r["key"] for r in rows}
    mem = memory_bandwidth((128 << 20) if args.quick else (2 << 30), args.repeats + 2)
    print(f"memory: torch.sum {mem['mem_gbps']:.2f} GB/s, numpy copy {mem['mem_copy_gbps']:.2f} GB/s "
          f"(over {mem['mem_buffer_gb']:.2f} GB); threads {torch.get_num_threads()}", flush=True)
    todo = [(K, P, s) for K, P, s in plan(args) if f"K{K}-P{P}-{s}" not in done]
    stale = [r for r in rows if "host_copy_stager_warm_gbps" not in r]  # from before the stager: host copies only
    if done:
        print(f"{len(rows)} row(s) from {args.results}; {len(todo)} to measure, {len(stale)} to re-time the host "
              "copies of", flush=True)
    workdir = (args.workdir or Path(tempfile.gettempdir())).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="lcsc-scale-", dir=workdir))

    def fits(K: int, P: int, storage: str) -> bool:  # noqa: N803
        nbytes, free = K * P * BYTES[storage], shutil.disk_usage(folder).free
        if nbytes > args.max_gb * GB or nbytes * 1.05 + (1 << 30) > free:
            print(f"skip {SHORT[storage]} K={K} P={P:,}: {nbytes / GB:.1f} GB is over --max-gb {args.max_gb:g} "
                  f"or the free disk ({free / GB:.1f} GB)", flush=True)
            return False
        return True

    def save(line: dict) -> None:
        if args.results:
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with open(args.results, "a") as fh:
                fh.write(json.dumps(line) + "\n")

    try:
        for row in stale:
            if fits(row["K"], row["P"], row["storage"]):
                extra = measure_host_copies(folder, row["K"], row["P"], row["storage"], args)
                row.update(extra)
                save({"key": row["key"], **extra})  # load_rows adds it to the row
        for K, P, storage in todo:  # noqa: N806
            if fits(K, P, storage):
                row = measure_row(folder, K, P, storage, args)
                rows.append(row)
                save(row)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not rows:
        raise SystemExit("error: no row measured (all sizes skipped)")
    all_rates = {s: r for s in STORAGE_DTYPES if (r := rates(rows, s)) is not None}
    if missing := [s for s, r in all_rates.items() if not all(f"{k}_warm" in r for k in HOST_COPIES)]:
        raise SystemExit(f"error: no {'/'.join(missing)} row has both host copies timed (re-timing was skipped)")
    table, be = cost_model(all_rates, args), break_even(all_rates, args)
    print_cost(table, be, args)
    out = headline(rows, mem, all_rates, table, be)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill runs main's clean-up (the temp folder goes)
    main()
