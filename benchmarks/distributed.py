"""Benchmark: the LCSC search's candidate evaluation on Ray workers (``lcsc search --workers N``).

Measures, side by side in one run, on a synthetic stack of K checkpoints of a small conv net:
  evals_per_s {"1", "2"}   candidates scored per second by the search with 1 and with 2 Ray workers, each worker
                           on one intra-op thread; the objective runs the merged net over a fixed input batch
                           (--work sets its cost). Ray's and the workers' start-up are excluded (printed);
                           one Ray instance serves every run, and is left --settle seconds to finish booting.
  scaling_2                evals_per_s["2"] / evals_per_s["1"]
  dispatch_overhead_ms     per-candidate time of a 1-worker pool minus that of the serial (in-process) search,
                           both with a do-nothing objective: what sending a candidate to a worker and its score
                           back costs (the worker's merge of each generation included)
Also checks that every run (serial, 1 worker, 2 workers) wrote the same journal (timing fields aside).

Run:  python benchmarks/distributed.py [--evals 48 --work 6 --repeats 3 --device cpu]  (~2 minutes on 2 cores)
On a GPU machine, --device cuda gives each worker a fair share of the GPUs (--gpus-per-worker to set it).
The last line printed is one JSON object with the figures above.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import ray
import torch

from lcsc.checkpoints import CheckpointStack, checkpoint_name, save_checkpoint
from lcsc.merge import StackMerger
from lcsc.search import SearchConfig, run_search
from lcsc.search.distributed import PoolSettings, RayPool
from lcsc.search.journal import TIMING_FIELDS, Journal


def net() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(32, 32, 3, padding=1),
        torch.nn.SiLU(), torch.nn.Conv2d(32, 3, 3, padding=1),
    )


def write_checkpoints(folder: Path, K: int) -> None:  # noqa: N803 - the paper's symbol
    gen = torch.Generator().manual_seed(0)
    base = net().state_dict()
    for k in range(K):
        state = {n: t + 0.05 * torch.randn(t.shape, generator=gen) for n, t in base.items()}
        save_checkpoint(folder / checkpoint_name(100 * (k + 1)), state, step=100 * (k + 1))


class NetObjective:
    """Loads each merged state into its own net and runs it ``work`` times over a fixed batch (deterministic)."""

    direction = "minimize"

    def __init__(self, work: int, device: str = "cpu") -> None:
        self.work, self.device = work, device
        self.model = net().to(device)
        self.x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)

    def score(self, state: dict[str, torch.Tensor]) -> float:
        if self.work == 0:
            return float(sum(t.double().sum() for t in state.values()))
        self.model.load_state_dict(state)
        with torch.no_grad():
            y = self.x
            for _ in range(self.work):
                y = self.model(y).tanh()
        return float(y.double().pow(2).mean())


def open_merger(folder: Path, device: str = "cpu") -> StackMerger:
    return StackMerger(CheckpointStack.open(folder, progress=False), device=device)


def timed_search(folder: Path, out: Path, work: int, evals: int, device: str, workers: int | None,
                 gpus: float | None) -> tuple[float, float]:
    """(seconds of search after the pool is up, pool start-up seconds)."""
    cfg = SearchConfig(evals=evals, generation_size=8, seed=1)
    marks: dict[str, float] = {}
    pool = None
    if workers:
        pool = RayPool(partial(open_merger, folder, device), partial(NetObjective, work, device),
                       PoolSettings(workers=workers, device=device, gpus_per_worker=gpus))
    t0 = time.perf_counter()
    try:
        run_search(open_merger(folder, device), NetObjective(work, device), cfg, out, progress=False, pool=pool,
                   on_event=lambda kind, _: marks.setdefault(kind, time.perf_counter()))
    finally:
        if pool is not None:
            pool.close()
    end = time.perf_counter()
    return end - marks["ready"], marks["ready"] - t0


def records(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in Journal.load(out / "journal.jsonl").records]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--K", type=int, default=20)
    p.add_argument("--evals", type=int, default=48)
    p.add_argument("--work", type=int, default=6, help="forward passes per candidate (objective cost)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--gpus-per-worker", type=float, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--settle", type=float, default=8.0,
                   help="seconds to let a fresh Ray instance finish booting its helper processes before timing")
    args = p.parse_args()
    torch.set_num_threads(1)  # the serial run on one thread, like each worker
    t0 = time.perf_counter()
    ray.init(num_cpus=2 if args.device == "cpu" else None, include_dashboard=False, log_to_driver=False,
             configure_logging=False)  # one instance for every run; the pools join it
    ray_start = time.perf_counter() - t0
    time.sleep(args.settle)  # its agents boot for a few seconds, taking the cores the runs would be timed on
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_checkpoints(root / "ckpts", args.K)
        CheckpointStack.open(root / "ckpts", progress=False)  # build the cache the workers map
        run = partial(timed_search, root / "ckpts", evals=args.evals, device=args.device, gpus=args.gpus_per_worker)
        times: dict[str, list[float]] = {k: [] for k in ("serial0", "pool0", "serial", "1", "2")}
        starts: dict[str, list[float]] = {"1": [], "2": []}
        same = True
        for r in range(args.repeats):  # interleaved, so a busy moment on the shared machine hits every setting
            for name, work, workers in (("serial0", 0, None), ("pool0", 0, 1), ("serial", args.work, None),
                                        ("1", args.work, 1), ("2", args.work, 2)):
                seconds, start = run(root / f"{name}-{r}", work, workers=workers)
                times[name].append(seconds)
                if name in starts:
                    starts[name].append(start)
            same = same and records(root / f"serial0-{r}") == records(root / f"pool0-{r}") and \
                records(root / f"serial-{r}") == records(root / f"1-{r}") == records(root / f"2-{r}")
    med = {k: statistics.median(v) for k, v in times.items()}
    start1, start2 = statistics.median(starts["1"]), statistics.median(starts["2"])
    serial0, pool0, same0 = med["serial0"], med["pool0"], same
    rate = {"serial": args.evals / med["serial"], "1": args.evals / med["1"], "2": args.evals / med["2"]}
    overhead_ms = 1000 * (pool0 - serial0) / args.evals
    print(f"medians of {args.repeats} interleaved repeats; evals/s per repeat: " + ", ".join(
        f"{k} {[round(args.evals / t, 2) for t in times[k]]}" for k in ("serial", "1", "2")))
    print(f"serial (in-process, 1 thread): {rate['serial']:.2f} evals/s")
    print(f"Ray start-up {ray_start:.1f} s (excluded), then {args.settle:.0f} s to settle")
    print(f"1 Ray worker : {rate['1']:.2f} evals/s (worker start-up {start1:.1f} s, excluded)")
    print(f"2 Ray workers: {rate['2']:.2f} evals/s (worker start-up {start2:.1f} s, excluded)")
    print(f"scaling_2 = {rate['2'] / rate['1']:.2f}; dispatch overhead {overhead_ms:.2f} ms per candidate "
          f"(do-nothing objective: serial {1000 * serial0 / args.evals:.2f} ms, 1 worker {1000 * pool0 / args.evals:.2f} ms)")
    print(f"journals equal (serial, 1 worker, 2 workers): {same and same0}")
    print(json.dumps({"evals_per_s": {"1": round(rate["1"], 3), "2": round(rate["2"], 3)},
                      "scaling_2": round(rate["2"] / rate["1"], 3), "dispatch_overhead_ms": round(overhead_ms, 3),
                      "serial_evals_per_s": round(rate["serial"], 3), "journals_equal": same and same0}))
    ray.shutdown()


if __name__ == "__main__":
    main()
