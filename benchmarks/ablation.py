"""Benchmark / ablation: faster DM training on the digits (second paper's Fig. 6a; --sweep for Fig. 6b/6c).

Trains the small digits DM for each variant — baseline, +MD (momentum decay), +MD+LRC (with learning-rate
compensation), +CLTS (timestep curriculum), all (CLTS+MD+LRC), Min-SNR-5 — and each training seed, scores the online
EMA (half-life 5 % of the run) every --eval-every iterations on held-out noise in the FD_digits space, and reports
per variant: final FD (mean ± std over seeds), iterations to reach the baseline's final FD (seed-mean curves) and
the speed-up = baseline iterations ÷ variant iterations to that FD. Writes ablation.png, ablation.md and
ablation.json to --out; the last line printed is the JSON list of rows
(variant, final_fd_mean, final_fd_std, iters_to_baseline_fd, speedup).

Run:  python benchmarks/ablation.py [--out runs/ablation]          # default size (3 seeds): ~20 min on 2 CPU cores
      python benchmarks/ablation.py --quick                         # ≤ 3 min smoke version
      python benchmarks/ablation.py --sweep mu --values 0.1,0.2,0.3,0.5
      python benchmarks/ablation.py --sweep target --values 0.1,0.25,0.5,1.0
Runs are resumable: finished (variant, seed) runs in --out are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lcsc.analysis.ablation import VARIANTS, AblationConfig, summarize, sweep_variants
from lcsc.analysis.ablation_runs import run_ablation
from lcsc.atomic import write_json, write_text
from lcsc.errors import ConfigError, LCSCError
from lcsc.report.plots import save_figure
from lcsc.report.tables import markdown_table

KEYS = ("variant", "final_fd_mean", "final_fd_std", "iters_to_baseline_fd", "speedup")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", default=None, help="training seeds, e.g. 0,1 (default 0,1,2)")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--sweep", choices=["mu", "target"], default=None, help="CLTS μ or K_target sweep")
    p.add_argument("--values", default="", help="sweep values (fractions of T for mu, of the run for target)")
    p.add_argument("--device", default="cpu")
    return p.parse_args()


def _numbers(text: str, kind: type, flag: str) -> list:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r} must be a comma-separated list of {kind.__name__} values") from None


def _config(a: argparse.Namespace) -> AblationConfig:
    kw = {"device": a.device}
    if a.seeds:
        kw["seeds"] = tuple(_numbers(a.seeds, int, "--seeds"))
    if a.iterations is not None:
        kw["iterations"] = a.iterations
    if a.eval_every is not None:
        kw["eval_every"] = a.eval_every
    if a.sweep:
        kw["variants"] = (VARIANTS["baseline"], *sweep_variants(a.sweep, _numbers(a.values, float, "--values")))
    return AblationConfig.quick(**kw) if a.quick else AblationConfig(**kw)


def _plot(curves, cfg: AblationConfig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, per_seed in curves.items():
        arr = np.asarray(list(per_seed.values()))
        ax.plot(cfg.eval_steps, arr.mean(0), label=name, lw=1.5)
        ax.fill_between(cfg.eval_steps, arr.min(0), arr.max(0), alpha=0.15)
    ax.set(xlabel="training iteration", ylabel="held-out FD_digits (EMA)", yscale="log",
           title=f"digits DM, {len(cfg.seeds)} seeds (band: min–max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _fmt(v, p=2):
    return "—" if v is None else f"{v:.{p}f}"


def _describe(cfg: AblationConfig) -> str:
    return (f"Small digits DM ({cfg.channels} channels), {cfg.iterations} iterations at batch {cfg.batch_size}, "
            f"lr {cfg.lr:g}, seeds {', '.join(map(str, cfg.seeds))}; every {cfg.eval_every} iterations the online "
            f"EMA (half-life {cfg.ema_fraction:.0%} of the run) is scored on held-out noise: {cfg.eval_samples} "
            f"samples, DPM-Solver++ NFE {cfg.eval_nfe}, FD_digits. Speed-up = iterations the baseline's seed-mean "
            "curve needs to reach its final FD ÷ iterations the variant's needs. \"within seed spread\": "
            "|Δ final FD| ≤ the sum of the two std's.")


def main() -> None:
    a = _args()
    try:
        cfg = _config(a)
    except LCSCError as e:
        sys.exit(f"error: {e}")
    t0 = time.perf_counter()
    curves = run_ablation(cfg, a.out, progress=sys.stderr.isatty(), on_run=lambda v, s, f: print(
        f"{v:<22} seed {s}: final FD {f[-1]:.2f}  ({time.perf_counter() - t0:.0f} s)", flush=True))
    rows = summarize(curves, cfg.eval_steps)
    cols = [("variant", lambda r: r["variant"]),
            ("final FD (mean ± std)", lambda r: f"{r['final_fd_mean']:.2f} ± {r['final_fd_std']:.2f}"),
            ("iters to baseline FD", lambda r: _fmt(r["iters_to_baseline_fd"], 0)),
            ("speed-up", lambda r: "—" if r["speedup"] is None else f"{r['speedup']:.2f}×"),
            ("vs baseline", lambda r: "—" if r["variant"] == "baseline" else
             ("within seed spread" if r["within_spread"] else "outside seed spread")),
            ("lower FD than baseline, same seed", lambda r: "—" if r["variant"] == "baseline" else r["seeds_better"])]
    table = markdown_table(rows, cols)
    _plot(curves, cfg, a.out / "ablation.png")
    write_json(a.out / "ablation.json", [{k: r[k] for k in KEYS} for r in rows])
    write_json(a.out / "ablation_curves.json", {"config": cfg.to_dict(), "steps": list(cfg.eval_steps),
                                                 "curves": {v: {str(s): f for s, f in c.items()} for v, c in curves.items()}})
    write_text(a.out / "ablation.md", f"# Faster DM training ablation (digits)\n\n{_describe(cfg)}\n\n{table}\n\n![FD vs iteration](ablation.png)\n")
    print(f"\n{table}\n\nwrote {a.out}/ablation.png, ablation.md, ablation.json ({time.perf_counter() - t0:.0f} s)")
    print(json.dumps([{k: r[k] for k in KEYS} for r in rows]))


if __name__ == "__main__":
    main()
