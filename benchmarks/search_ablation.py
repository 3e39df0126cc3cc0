"""Benchmark: LCSC search hyper-parameters at equal budgets (Liu et al., Tabs. 4, 9 and 14).

Runs ``lcsc analyze ablation-search`` on a window: Algorithm 1 with the default setting and with one factor changed
at a time — samples per evaluation, mutation σ (multiples of 1/K), parent pool size M, convex restriction — each
with several search seeds on the same evaluation budget; the best individual of every search (chosen on search
noise) is scored on held-out noise. Writes ablation-search.{md,json,png} to --out; the last line printed is one JSON
object: best_setting (lowest mean held-out FD; a report, nothing is selected with it), fd_by_setting (mean held-out
FD), std_by_setting, default_fd, wall_s.

Run:  python benchmarks/search_ablation.py                # the demo DM window, the CLI's default size (3 seeds)
      python benchmarks/search_ablation.py --quick        # tiny smoke run (8 evals, 32 samples, 2 seeds)
The window defaults to runs/demo-seed1/dm/windows/800 (lcsc demo --seed 1); without it a tiny DM is trained first.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from lcsc.cli.main import main as lcsc_main

DEMO_WINDOW = Path("runs/demo-seed1/dm/windows/800")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--window", type=Path, default=None, help=f"checkpoint window (default {DEMO_WINDOW})")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temp dir)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--search-seeds", type=int, default=None, help="default 3 (2 with --quick)")
    p.add_argument("--evals", type=int, default=None, help="evaluations per search (default: the CLI's)")
    return p.parse_args()


def _tiny_window(work: Path) -> Path:
    """A small DM trained here when no demo window exists (~20 s)."""
    run = work / "tiny-dm"
    rc = lcsc_main(["train", "dm", "--iterations", "40", "--batch-size", "32", "--channels", "8", "--record-window",
                    "40", "--record-interval", "5", "--sample-count", "0", "-o", str(run)])
    if rc != 0:
        raise SystemExit(rc)
    return run / "windows" / "40"


def main() -> None:
    a = _args()
    work = Path(tempfile.mkdtemp(prefix="lcsc-search-ablation-"))
    window = a.window or (DEMO_WINDOW if DEMO_WINDOW.is_dir() else _tiny_window(work))
    out = a.out or work / "out"
    cmd = ["analyze", "ablation-search", str(window), "-o", str(out),
           "--search-seeds", str(a.search_seeds or (2 if a.quick else 3))]
    cmd += ["--quick"] if a.quick else []
    cmd += ["--evals", str(a.evals)] if a.evals else []
    print("lcsc " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = lcsc_main(cmd)
    if rc != 0:
        raise SystemExit(rc)
    data = json.loads((out / "ablation-search.json").read_text())
    print((out / "ablation-search.md").read_text())
    table = data["table"]
    print(json.dumps({
        "best_setting": data["best_setting_held_out"],
        "fd_by_setting": {r["setting"]: round(r["held_out_mean"], 4) for r in table},
        "std_by_setting": {r["setting"]: round(r["held_out_std"], 4) for r in table},
        "default_fd": round(table[0]["held_out_mean"], 4), "evals": data["info"]["evals"],
        "seeds": len(data["info"]["seeds"]), "window": str(window), "wall_s": round(time.perf_counter() - t0, 1),
    }))


if __name__ == "__main__":
    main()
