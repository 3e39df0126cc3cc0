"""``lcsc analyze <what> … -o DIR``: the papers' figures and tables from any run (one module per analysis)."""

from __future__ import annotations

import argparse
import importlib

__all__ = ["register", "ANALYSES"]

# one CLI module per analysis, each with register(subparsers) and its own run(args)
ANALYSES = (
    "analyze_loss",
    "analyze_landscape",
    "analyze_consistency",
    "analyze_coefficients",
    "analyze_ema_grid",
    "analyze_ablation",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="the papers' figures and tables: landscape, coefficients, ema-grid, "
                                       "ablation-search, consistency, loss-landscape, hessian")
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    for name in ANALYSES:
        importlib.import_module(f"lcsc.cli.{name}").register(what)
