"""Benchmark: sampling under bf16 autocast vs float32 — does FD_digits move by more than the noise seed does?

Trains (or reuses, in ``--work``) the small digits DM and CM for ``--iterations`` iterations, then samples the
last online EMA of each on ``--seeds`` held-out noise seeds, every seed once in float32 and once with the network under
bf16 autocast (``lcsc.precision``; the solver stays float32), on the same noise, and scores both in FD_digits.
Per model it reports:
  fd_fp32, fd_bf16   mean FD over the seeds
  fd_diff            mean paired difference bf16 − fp32 (same noise), and its std over seeds
  fd_seed_std        std of the float32 FD over the seeds: the noise a single evaluation carries
  within_noise       |fd_diff| <= fd_seed_std
  time_ratio         sampling time bf16 / fp32 (alternating, summed over the seeds; features excluded)
The last line printed is one JSON object: the DM's figures at the top level (DPM-Solver++ at ``--dm-nfe``), the CM's
(1 step) under "cm", and ``within_noise_all``.

Run:  python benchmarks/mixed_precision.py [--device cuda] [--iterations 400 --seeds 5 --samples 1000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lcsc.data import load_digits_data
from lcsc.devices import check_device
from lcsc.errors import ConfigError
from lcsc.generate import generate
from lcsc.metrics import evaluate_images, reference_set
from lcsc.metrics.spaces import feature_space
from lcsc.models import ModelConfig, load_model
from lcsc.objectives.base import HELD_OUT_SEED_OFFSET
from lcsc.training import OptimConfig, RecordConfig, TrainConfig, train


def trained(kind: str, args: argparse.Namespace, work: Path) -> Path:
    """The last EMA snapshot of a small digits ``kind`` model trained for ``args.iterations`` (reused if there)."""
    n, hl = args.iterations, max(1.0, args.iterations / 10)
    path = work / kind / "ema" / f"hl-{hl:g}" / f"ema-{n:09d}.safetensors"
    if not path.is_file():
        cfg = TrainConfig(model=ModelConfig(kind=kind, channels=32), iterations=n, batch_size=128, seed=0,
                          record=RecordConfig(window=1, interval=1), ema_half_lives=(hl,), device=args.device,
                          sample_count=0, optim=OptimConfig(lr=2e-3 if kind == "dm" else 1e-3))
        train(cfg, work / kind, progress=False)
    return path


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(kind: str, args: argparse.Namespace, work: Path, features, reference) -> dict:
    """Paired fp32 / bf16 FDs over the seeds and the sampling-time ratio for one model."""
    model = load_model(trained(kind, args, work), args.device)
    nfe = args.dm_nfe if kind == "dm" else 1
    generate(model, 64, 0, nfe=nfe, device=args.device, autocast="bf16")  # warm-up both paths
    generate(model, 64, 0, nfe=nfe, device=args.device)
    fds: dict[str, list[float]] = {"off": [], "bf16": []}
    secs = {"off": 0.0, "bf16": 0.0}
    for i in range(args.seeds):
        seed = HELD_OUT_SEED_OFFSET + i
        for mode in (("off", "bf16") if i % 2 == 0 else ("bf16", "off")):  # alternate which goes first
            sync(args.device)
            t0 = time.perf_counter()
            images = generate(model, args.samples, seed, nfe=nfe, device=args.device, autocast=mode,
                              batch_size=args.batch_size)
            secs[mode] += time.perf_counter() - t0
            fds[mode].append(evaluate_images(images, reference, features, ("fd",)).fd)
    diffs = [b - a for a, b in zip(fds["off"], fds["bf16"])]
    seed_std = statistics.stdev(fds["off"]) if args.seeds > 1 else float("nan")
    mean_diff = statistics.fmean(diffs)
    row = {"fd_fp32": statistics.fmean(fds["off"]), "fd_bf16": statistics.fmean(fds["bf16"]), "fd_diff": mean_diff,
           "fd_diff_std": statistics.stdev(diffs) if args.seeds > 1 else float("nan"), "fd_seed_std": seed_std,
           "within_noise": bool(abs(mean_diff) <= seed_std), "time_ratio": secs["bf16"] / secs["off"],
           "fp32_s": secs["off"], "bf16_s": secs["bf16"], "nfe": nfe,
           "fd_fp32_per_seed": fds["off"], "fd_bf16_per_seed": fds["bf16"]}
    print(f"{kind.upper()} (NFE {nfe}): FD fp32 {row['fd_fp32']:.3f}, bf16 {row['fd_bf16']:.3f}; paired diff "
          f"{mean_diff:+.3f} ± {row['fd_diff_std']:.3f}; seed-to-seed std {seed_std:.3f} → "
          f"{'within' if row['within_noise'] else 'OUTSIDE'} noise; time bf16/fp32 {row['time_ratio']:.2f} "
          f"({secs['bf16']:.2f} s vs {secs['off']:.2f} s)", flush=True)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--iterations", type=int, default=400, help="training iterations of each model")
    p.add_argument("--seeds", type=int, default=5, help="held-out noise seeds (≥ 2 for a seed-to-seed std)")
    p.add_argument("--samples", type=int, default=1000, help="images per seed and precision")
    p.add_argument("--dm-nfe", type=int, default=10, help="DPM-Solver++ steps for the DM")
    p.add_argument("--batch-size", type=int, default=500, help="sampling batch")
    p.add_argument("--work", type=Path, default=None, help="keep the trained models here (reused when present)")
    p.add_argument("--quick", action="store_true", help="smoke size: 60 iterations, 2 seeds, 200 samples")
    args = p.parse_args()
    if args.quick:
        args.iterations, args.seeds, args.samples = 60, 2, 200
    try:
        check_device(args.device)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.seeds < 2:
        raise SystemExit("error: --seeds must be >= 2 (the seed-to-seed std is the noise scale)")
    return args


def main() -> None:
    args = parse_args()
    features = feature_space("digits", args.device)
    reference = reference_set(load_digits_data(), features)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        t0 = time.perf_counter()
        dm = measure("dm", args, work, features, reference)
        cm = measure("cm", args, work, features, reference)
    headline = {k: dm[k] for k in ("fd_fp32", "fd_bf16", "fd_diff", "fd_seed_std", "within_noise", "time_ratio")}
    print(json.dumps({**headline, "within_noise_all": dm["within_noise"] and cm["within_noise"], "dm": dm, "cm": cm,
                      "device": args.device, "iterations": args.iterations, "seeds": args.seeds,
                      "samples": args.samples, "threads": torch.get_num_threads(),
                      "total_s": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
