"""Core of the FD speed benchmark: scipy-sqrtm Fréchet distance vs the eigenvalue route with Σ_ref^{1/2} precomputed.

``fd_benchmark`` builds two correlated, full-rank N×d feature sets (Z @ A with a random A; the second set uses a
perturbed A and a mean shift), fits Gaussians to both, then times ``frechet_distance_sqrtm`` and
``FrechetReference.distance`` alternately (sqrtm, fast, sqrtm, fast, ...; the machine is shared and noisy) and keeps
the median of each. The reference precomputation S = Σ_ref^{1/2} is timed once and kept out of the per-call time:
a search computes it once and reuses it for every candidate.

Run:  python benchmarks/fd_core.py   (prints the result dict as JSON; d=2048, n=4096, 3 repeats)
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np

from lcsc.metrics.frechet import FrechetReference, GaussianStats, frechet_distance_sqrtm

__all__ = ["fd_benchmark", "make_feature_sets"]


def make_feature_sets(d: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two N×d float64 feature sets with correlated, full-rank (for n > d) and different covariances."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    mix_fake = mix + 0.2 * rng.standard_normal((d, d)) / np.sqrt(d)
    real = rng.standard_normal((n, d)) @ mix
    fake = rng.standard_normal((n, d)) @ mix_fake + 0.05 * rng.standard_normal(d)
    return real, fake


def fd_benchmark(d: int = 2048, n: int = 4096, repeats: int = 3, seed: int = 0) -> dict:
    """Median seconds per FD call of the sqrtm formula and of the fast route, their ratio and relative difference."""
    real, fake = make_feature_sets(d, n, seed)
    ref_stats, stats = GaussianStats.from_features(real), GaussianStats.from_features(fake)
    del real, fake
    t0 = time.perf_counter()
    ref = FrechetReference(ref_stats)
    precompute_s = time.perf_counter() - t0
    sqrtm_times, fast_times = [], []
    fd_sqrtm = fd_fast = float("nan")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fd_sqrtm = frechet_distance_sqrtm(ref_stats, stats)
        sqrtm_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fd_fast = ref.distance(stats)
        fast_times.append(time.perf_counter() - t0)
    sqrtm_s, fast_s = statistics.median(sqrtm_times), statistics.median(fast_times)
    return {
        "sqrtm_s": sqrtm_s,
        "fast_s": fast_s,
        "fast_precompute_s": precompute_s,
        "fast_fd_speedup_vs_sqrtm": sqrtm_s / fast_s,
        "fast_fd_rel_err": abs(fd_fast - fd_sqrtm) / abs(fd_sqrtm),
        "fd_sqrtm": fd_sqrtm,
        "fd_fast": fd_fast,
        "d": d,
        "n": n,
        "repeats": repeats,
    }


if __name__ == "__main__":
    print(json.dumps(fd_benchmark()))
