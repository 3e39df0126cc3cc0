"""Seed robustness of the demo's headlines: one row per training seed and model from several report.json files.

    python -m lcsc.analysis.seed_table runs/demo-seed*/report/report.json -o docs/demo/seeds.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lcsc.atomic import write_text
from lcsc.demo.headlines import SPACES, holds_everywhere

__all__ = ["seed_rows", "seed_table", "main"]


def _row(payload: dict[str, Any], key: str, model: str) -> dict[str, Any]:
    rows, final = payload["rows"], payload["config"]["iterations"]
    get = {(r["method"], r["iteration"]): r for r in rows if r["model"] == model and r["main"]}
    star, lcsc = get[("EMA*", final)], get[("LCSC", final)]
    early = next(r for (m, it), r in get.items() if m == "LCSC" and it < final)
    match = payload["nfe_match"].get(key, {})
    return {"seed": payload["config"]["seed"], "model": model, "ema_star": star["detail"],
            "ema": {k: star[k] for k in SPACES}, "lcsc": {k: lcsc[k] for k in SPACES},
            "beats_everywhere": holds_everywhere(lcsc, star),
            "speedup": early["speedup"]["speedup_iters"], "speedup_claimed": early["speedup"]["claimed"],
            "speedup_with_search": early["speedup"]["speedup_with_search"],
            "nfe": match.get("ema_star_nfe"), "lcsc_nfe": match.get("lcsc_nfe"), "nfe_claimed": match.get("claimed"),
            "interior": all(payload["ema_star_interior"][key].values()),
            "edges": [p for p, ok in payload["ema_star_interior"][key].items() if not ok]}


def seed_rows(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per (report, model): the headline quantities of that seed."""
    return [_row(p, key, model) for p in payloads for key, model in p["models"].items()]


def _yes(v: bool | None) -> str:
    return "—" if v is None else ("yes" if v else "**no**")


def seed_table(payloads: list[dict[str, Any]]) -> str:
    """Markdown: the per-seed table and, per model, what holds on every seed."""
    rows = seed_rows(payloads)
    out = ["| Seed | Model | EMA* | EMA* FD_digits / FD2 / FD3 | LCSC FD_digits / FD2 / FD3 | LCSC beats EMA* "
           "everywhere | Speed-up at the early point (all spaces; with search) | EMA* NFE matching LCSC | EMA* "
           "interior |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["seed"])):
        fmt = " / ".join(f"{r['ema'][k]:.3g}" for k in SPACES), " / ".join(f"{r['lcsc'][k]:.3g}" for k in SPACES)
        speed = f"{r['speedup']:.2f}× ({r['speedup_with_search']:.2f}×){'' if r['speedup_claimed'] else ', not claimed'}"
        nfe = "—" if r["nfe"] is None else f"LCSC@{r['lcsc_nfe']} ≈ EMA*@{r['nfe']}" + \
            ("" if r["nfe_claimed"] else ", not claimed")
        edges = "" if r["interior"] else f" (edge at {', '.join(r['edges'])})"
        out.append(f"| {r['seed']} | {r['model']} | {r['ema_star']} | {fmt[0]} | {fmt[1]} | "
                   f"{_yes(r['beats_everywhere'])} | {speed} | {nfe} | {_yes(r['interior'])}{edges} |")
    out.append("")
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        n = len(mine)
        out.append(f"- **{model}** ({n} seeds): LCSC beats EMA* in every space on "
                   f"{sum(r['beats_everywhere'] for r in mine)} of {n}; training-cost speed-up claimed on "
                   f"{sum(r['speedup_claimed'] for r in mine)} of {n}; NFE reduction claimed on "
                   f"{sum(bool(r['nfe_claimed']) for r in mine)} of {n}; EMA* interior at every point on "
                   f"{sum(r['interior'] for r in mine)} of {n}.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="seed-robustness table of several lcsc demo report.json files")
    p.add_argument("reports", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, default=None)
    args = p.parse_args(argv)
    payloads = []
    for path in args.reports:
        try:
            payload = json.loads(Path(path).read_text())
            payload["rows"], payload["models"], payload["nfe_match"]  # noqa: B018 - the keys a demo report has
        except (OSError, ValueError, KeyError, TypeError) as exc:
            p.error(f"{path}: not a readable lcsc demo report.json ({type(exc).__name__}: {exc})")
        payloads.append(payload)
    text = ("# lcsc demo: seed robustness\n\nOne row per training seed and model, from the report.json of `lcsc demo "
            "--seed S` runs (held-out FD means; a headline counts only where it holds in FD_digits, FD2 and FD3). "
            "Made with `python -m lcsc.analysis.seed_table REPORT.json … -o seeds.md`.\n\n"
            + seed_table(payloads))
    if args.output:
        write_text(args.output, text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
