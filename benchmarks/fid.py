"""Benchmark: fast Fréchet distance vs scipy sqrtm (2048-d), and feature throughput (Inception, digits nets).

Measures on this machine:
  fast_fd_speedup_vs_sqrtm   time of the scipy-sqrtm FD / time of the fast FD with Σ_ref^{1/2} precomputed (d=2048)
  fast_fd_rel_err            |fast − sqrtm| / sqrtm on the same statistics
  inception_img_per_s        FID Inception-v3 features/s on 8×8 digits resized to 299×299 (None if not installed)
  digits_features_img_per_s  FD_digits (CNN) features/s on the 1,797 digits
The FD timings alternate sqrtm and fast calls (noisy shared machine). The last line printed is one JSON object.

Run:  python benchmarks/fid.py [--d 2048 --n 4096 --repeats 3 --inception-images 32 --device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fd_core import fd_benchmark  # noqa: E402
from lcsc.data import load_digits_data  # noqa: E402
from lcsc.errors import ConfigError  # noqa: E402
from lcsc.metrics import feature_space  # noqa: E402


def features_per_s(name: str, images: torch.Tensor, device: str, repeats: int = 3) -> float:
    f = feature_space(name, device)
    f(images[:4])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(images)
        best = min(best, time.perf_counter() - t0)
    return len(images) / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--inception-images", type=int, default=32)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    fd = fd_benchmark(d=args.d, n=args.n, repeats=args.repeats)
    print(f"FD d={args.d}: scipy sqrtm {fd['sqrtm_s'] * 1e3:.1f} ms, fast {fd['fast_s'] * 1e3:.1f} ms "
          f"(+{fd['fast_precompute_s'] * 1e3:.1f} ms once for Σ_ref^1/2): speedup {fd['fast_fd_speedup_vs_sqrtm']:.1f}×"
          f" (target ≥ 5), rel err {fd['fast_fd_rel_err']:.2e} (target ≤ 1e-4)")
    digits = load_digits_data().images
    digits_rate = features_per_s("digits", digits, args.device)
    print(f"digits features: {digits_rate:,.0f} img/s ({len(digits)} images, batch 1000)")
    try:
        inc_rate = features_per_s("inception", digits[: args.inception_images], args.device, repeats=1)
        print(f"inception features: {inc_rate:.2f} img/s ({args.inception_images} images, 299×299, batch 32)")
    except ConfigError as exc:
        inc_rate = None
        print(f"inception features: skipped ({exc})")
    print(json.dumps({"fast_fd_speedup_vs_sqrtm": round(fd["fast_fd_speedup_vs_sqrtm"], 2),
                      "fast_fd_rel_err": fd["fast_fd_rel_err"],
                      "inception_img_per_s": None if inc_rate is None else round(inc_rate, 2),
                      "digits_features_img_per_s": round(digits_rate, 1), "d": args.d, "device": args.device}))


if __name__ == "__main__":
    main()
