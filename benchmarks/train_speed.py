"""Benchmark: training speed of the small DM and CM at batch 128, and sampling throughput at NFE 1, 2, 10, 20.

Measures, on the embedded digits data (8×8, 1 channel) with the ``small`` backbone:
  dm_it_per_s           DDPM ε-loss training iterations/s (forward, backward, Adam, grad clip, two EMA updates)
  cm_it_per_s           improved-CT training iterations/s (two network passes per iteration), same extras
  sample_img_per_s      DM images/s with DPM-Solver++ at NFE 1, 2, 10, 20 (batch of --samples, CPU-seeded noise)
  cm_sample_img_per_s   CM images/s with 1- and 2-step consistency sampling
The DM and CM are timed interleaved (--rounds alternating rounds, the median round kept) because this machine
is shared and noisy. The last line printed is one JSON object with the figures above (plus parameter counts).

Run:  python benchmarks/train_speed.py [--iters 100 --rounds 3 --samples 512 --device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from lcsc.data import load_digits_data
from lcsc.generate import generate
from lcsc.models import ModelConfig, count_parameters
from lcsc.training import RecordConfig, TrainConfig, Trainer


def make_trainer(kind: str, args: argparse.Namespace, run_dir: str, data) -> Trainer:
    cfg = TrainConfig(model=ModelConfig(kind=kind), iterations=10**6, batch_size=args.batch_size,
                      record=RecordConfig(window=1, interval=1), ema_half_lives=(100.0, 1000.0),
                      device=args.device, sample_count=0)
    return Trainer(cfg, run_dir, data=data, resume=False, progress=False)


def time_iters(trainer: Trainer, start: int, n: int) -> float:
    """Iterations/s of ``n`` training steps (optimiser step + EMA updates; the recorder writes nothing here)."""
    sync(trainer.device)
    t0 = time.perf_counter()
    for step in range(start, start + n):
        trainer.train_step(step)
        trainer.ema.update()
    sync(trainer.device)
    return n / (time.perf_counter() - t0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_rate(model, n: int, nfe: int, solver: str, device: str) -> float:
    generate(model, min(n, 64), 0, nfe=nfe, solver=solver, device=device)  # warm-up (scheduler set-up, caches)
    rates = []
    for seed in range(3):  # median of three timed batches
        t0 = time.perf_counter()
        generate(model, n, seed + 1, nfe=nfe, solver=solver, batch_size=n, device=device)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=100, help="iterations per timed round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    import tempfile

    data = load_digits_data()
    with tempfile.TemporaryDirectory() as tmp:
        dm, cm = make_trainer("dm", args, f"{tmp}/dm", data), make_trainer("cm", args, f"{tmp}/cm", data)
        print(f"device {args.device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}")
        print(f"small DM: {count_parameters(dm.model):,} parameters; small CM: {count_parameters(cm.model):,}")
        time_iters(dm, 1, 10), time_iters(cm, 1, 10)  # warm-up
        rates = {"dm": [], "cm": []}
        for r in range(args.rounds):
            start = 11 + r * args.iters
            rates["dm"].append(time_iters(dm, start, args.iters))
            rates["cm"].append(time_iters(cm, start, args.iters))
            print(f"round {r + 1}: DM {rates['dm'][-1]:.1f} it/s, CM {rates['cm'][-1]:.1f} it/s")
        dm_rate, cm_rate = statistics.median(rates["dm"]), statistics.median(rates["cm"])
        print(f"train  : DM {dm_rate:.1f} it/s, CM {cm_rate:.1f} it/s (median; target >= 20)")
        dm_model, cm_model = dm.model.eval(), cm.model.eval()
        dm_sample = {str(n): round(sample_rate(dm_model, args.samples, n, "dpm-solver", args.device), 1)
                     for n in (1, 2, 10, 20)}
        cm_sample = {str(n): round(sample_rate(cm_model, args.samples, n, "consistency", args.device), 1)
                     for n in (1, 2)}
        print(f"sample : DM DPM-Solver++ images/s by NFE {dm_sample}; CM by NFE {cm_sample}")
        print(json.dumps({"dm_it_per_s": round(dm_rate, 2), "cm_it_per_s": round(cm_rate, 2),
                          "sample_img_per_s": dm_sample, "cm_sample_img_per_s": cm_sample,
                          "dm_params": count_parameters(dm.model), "cm_params": count_parameters(cm.model),
                          "device": args.device, "batch_size": args.batch_size}))


if __name__ == "__main__":
    main()
