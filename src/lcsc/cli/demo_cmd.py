"""``lcsc demo``: train a DM and a CM on the embedded digits, compare EMA / EMA* / LCSC on held-out noise, report."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from lcsc.atomic import check_writable
from lcsc.cli.common import write_resolved_config
from lcsc.experiment.config import DemoConfig

__all__ = ["register"]

_OVERRIDES = {"iterations": int, "window": int, "interval": int, "dm_search_evals": int, "cm_search_evals": int,
              "search_samples": int, "eval_samples": int, "eval_seeds": int, "inception_samples": int,
              "channels": int, "dm_nfe": int, "search_objective": str, "search_optimizer": str, "search_space": str,
              "guard_finalists": int, "grad_steps": int, "dm_low_nfe": int}
_SWITCHES = {"no_anchors": ("anchored", "search the window alone (the paper's search; no anchoring table)"),
             "no_gradient": ("gradient", "skip the gradient search (Alg. 1 only; its export is then the LCSC row)")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the LCSC paper's headline on digits: DM + CM, EMA / EMA* / LCSC, a report")
    p.add_argument("-o", "--output", type=Path, default=Path("runs/demo"), help="output folder (resumable)")
    p.add_argument("--quick", action="store_true", help="a ≤ 1.5-minute smoke version (small runs and searches)")
    p.add_argument("--cd", action="store_true", help="also distil a CM from the DM (CD; adds a few minutes)")
    p.add_argument("--inception", action="store_true", help="add Inception FID on held-out samples (slow on CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0, help="training seeds and the search noise seed")
    for name, kind in _OVERRIDES.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help="override the preset")
    p.add_argument("--search-racing", action="store_true", default=None, help="race candidates on sample count")
    for flag, (_, text) in _SWITCHES.items():
        p.add_argument(f"--{flag.replace('_', '-')}", action="store_true", help=text)
    p.add_argument("--export", choices=["gradient", "alg1"], default=None,
                   help="whose export is the LCSC row behind the headlines (default: alg1, the decision rule's "
                        "choice: docs/demo/export-decision; the other search is the row beside it)")
    p.add_argument("--window-baseline", action="store_true",
                   help="also run the paper's window-only search at the end (the anchoring table's row; slower)")
    p.add_argument("--no-window-baseline", action="store_true", help=argparse.SUPPRESS)  # the default since issue 34
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    overrides = {k: getattr(args, k) for k in (*_OVERRIDES, "search_racing") if getattr(args, k) is not None}
    overrides |= {"cd": args.cd, "inception": args.inception, "device": args.device, "seed": args.seed}
    overrides |= {field: False for flag, (field, _) in _SWITCHES.items() if getattr(args, flag, False)}
    overrides |= {"window_only_baseline": True} if getattr(args, "window_baseline", False) else {}
    export = getattr(args, "export", None)
    if getattr(args, "no_gradient", False):  # Alg. 1 alone: its export, and no low-NFE gradient search
        overrides.setdefault("dm_low_nfe", 0)
    overrides |= {"export": export or "alg1"}
    return DemoConfig.quick(**overrides) if args.quick else DemoConfig(**overrides)


def _on_stage(kind: str, info: dict) -> None:
    if kind == "estimate":
        print(f"estimated total: {info['seconds'] / 60:.1f} min", file=sys.stderr, flush=True)
    elif kind == "start":
        print(f"== {info['stage']}", file=sys.stderr, flush=True)
    elif kind == "done":
        print(f"   {info['stage']}: {info['seconds']:.1f} s", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from lcsc.demo.report import (  # matplotlib: lazily
        report_payload,
        table_columns,
        verdicts,
        write_demo_report,
    )
    from lcsc.demo.run import run_demo
    from lcsc.report.tables import markdown_table

    cfg = config_from_args(args)
    check_writable(args.output, folder=True)
    result = run_demo(cfg, args.output, progress=sys.stderr.isatty(), on_stage=_on_stage)
    report_dir = args.output / "report"
    paths = write_demo_report(result, report_dir)
    write_resolved_config(report_dir / "command.json", "demo", args, {"demo": dataclasses.asdict(cfg)})
    payload = report_payload(result)
    print("\n" + "\n".join(verdicts(payload)).replace("**", "").replace("\\*", "*") + "\n")
    print(markdown_table([r for r in payload["rows"] if r["main"]], table_columns(cfg.inception)))
    print(f"\ntotal {sum(result.stages.values()) / 60:.1f} min (estimate {result.estimate_s / 60:.1f} min)")
    print(f"report: {paths['md']} and {paths['html']} (figures, report.json, config.json beside)")
    return 0
