"""``lcsc analyze coefficients SEARCH_DIR… -o DIR``: LCSC Fig. 5, exported coefficients vs EMA profiles (the window
part of anchored and gradient searches; their anchors' weights by name)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lcsc.errors import ConfigError

__all__ = ["register", "run"]


def register(what: argparse._SubParsersAction) -> None:
    p = what.add_parser("coefficients", help="LCSC Fig. 5: best coefficients per search, EMA profiles, negative "
                                             "mass, effective window, correlation between searches, convergence")
    p.add_argument("searches", nargs="+", type=Path, metavar="SEARCH_DIR",
                   help="search folders (journal.jsonl; plain, anchored or gradient searches, mixed)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--ema-half-life", default="", metavar="H1,H2,…",
                   help="overlay online-EMA profiles of these half-lives (iterations) over each window")
    p.add_argument("--ema-star", type=Path, default=None, metavar="REPORT_JSON",
                   help="overlay the demo report's EMA* choice at each window's end step")
    p.add_argument("--mass", type=float, default=0.9, help="share of Σ|a| that defines the effective window")
    p.set_defaults(func=run)


def _half_lives(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--ema-half-life {text!r}: give numbers H1,H2,…") from None
    if any(v <= 0 for v in values):
        raise ConfigError(f"--ema-half-life {text!r}: half-lives must be > 0")
    return values


def _report(path: Path | None) -> dict | None:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--ema-star {path}: cannot read a report JSON ({e})") from None


def run(args: argparse.Namespace) -> int:
    from lcsc.analysis.coefficient_patterns import (
        coefficient_patterns,
        patterns_markdown,
        plot_coefficient_patterns,
    )
    from lcsc.analysis.output import write_analysis
    from lcsc.cli.common import write_resolved_config

    data = coefficient_patterns(args.searches, _half_lives(args.ema_half_life), _report(args.ema_star), args.mass)
    paths = write_analysis(args.output, "coefficients", data, plot_coefficient_patterns(data), patterns_markdown(data))
    write_resolved_config(args.output / "coefficients.config.json", "analyze coefficients", args)
    for s in data["searches"]:
        st = s["stats"]
        score = "—" if s["best_score"] is None else f"{s['best_score']:.4g}"
        anchors = f", anchors Σa {st['anchor_weight']:.3f}" if s["anchors"] else ""
        print(f"{s['name']} ({s['kind']}, {s['export'] or 'best'}): score {score}, negative mass "
              f"{st['negative_mass']:.3f}, {int(100 * args.mass)}% window {st['effective_window']} ckpts, "
              f"(Σa)²/Σa² {st['participation']:.1f}{anchors}")
    for c in data["correlations"]:
        print(f"pearson({c['a']}, {c['b']}) = {c['pearson']:.3f}")
    print(f"wrote {paths['md']}")
    return 0
