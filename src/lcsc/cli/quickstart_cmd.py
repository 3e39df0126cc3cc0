"""``lcsc quickstart``: the foundation end to end on the embedded digits data."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcsc.atomic import check_writable, write_json
from lcsc.cli.common import human_bytes, write_resolved_config
from lcsc.demo.quickstart import QuickstartConfig, run_quickstart

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="record checkpoints of a digits classifier, stack and merge them")
    p.add_argument("-o", "--output", type=Path, default=Path("runs/quickstart"), help="output folder")
    d = QuickstartConfig()
    p.add_argument("--iterations", type=int, default=d.iterations)
    p.add_argument("--window", type=int, default=d.window, help="record the last W iterations")
    p.add_argument("--interval", type=int, default=d.interval, help="save a checkpoint every I iterations")
    p.add_argument("--seed", type=int, default=d.seed)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = QuickstartConfig(
        iterations=args.iterations, window=args.window, interval=args.interval, seed=args.seed
    )
    res = run_quickstart(cfg, check_writable(args.output, folder=True))
    s = res.stack_summary
    print(f"\nrecorded {s['K']} checkpoints (steps {s['steps'][0]}…{s['steps'][-1]}) in {res.checkpoint_dir}")
    print(
        f"stack: K={s['K']} × P={s['P']:,} {s['storage']}, {human_bytes(s['stack_bytes'])}, cache {s['cache_state']}"
    )
    print(f"merged {len(res.rows)} candidates in one pass: {res.timings['merge_many_s'] * 1e3:.1f} ms\n")
    print("chosen (*) on the search split's loss; reported on the held-out split, which chose nothing")
    print(f"{'candidate':<42} {'search loss':>11} {'held-out loss':>13} {'accuracy':>9} {'min a_k':>8}")
    for r in res.rows:
        name = ("* " if r["chosen"] else "  ") + r["candidate"]
        print(f"{name:<42} {r['search_loss']:>11.4f} {r['held_out_loss']:>13.4f} {r['held_out_accuracy']:>9.3f} "
              f"{r['min_coefficient']:>8.3f}")
    write_json(args.output / "results.json", {"rows": res.rows, "stack": s, "timings": res.timings})
    write_resolved_config(args.output / "config.json", "quickstart", args, {"quickstart": vars(cfg)})
    print(f"\nwrote {args.output}/results.json, best_coefficients.json, merged.safetensors, config.json")
    print(f"next: lcsc inspect {res.checkpoint_dir}; lcsc merge {res.checkpoint_dir} --coeffs "
          f"{args.output}/best_coefficients.json -o merged.safetensors")  # fmt: skip
    return 0
