"""Seed robustness of the demo's headlines: one row per training seed and model from several report.json files.

    python -m lcsc.analysis.seed_table runs/demo-seed*/report/report.json -o docs/demo/seeds.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.atomic import write_text
from lcsc.experiment.headlines import holds_everywhere, nfe_match
from lcsc.protocol import DECISION_SEEDS, REPORT_SEEDS, seed_role
from lcsc.spaces import ALL_SPACES, SPACE_NAMES, spaces_in

__all__ = ["seed_rows", "seed_table", "main", "VARIANTS"]

VARIANTS = {"Alg. 1 + guard": "LCSC Alg. 1", "gradient + guard": "LCSC gradient", "window only": "LCSC window only",
            "shrink 0.5": "LCSC shrink 0.5", "shrink 0.75": "LCSC shrink 0.75"}  # column → report method (at the end)
_EXPORT_VARIANT = {"gradient": "gradient + guard", "alg1": "Alg. 1 + guard"}  # the export's own column (row "LCSC")
_ROLE_TITLES = {"report": f"Report seeds {', '.join(map(str, REPORT_SEEDS))}: nothing was chosen on them",
                "decision": f"Decision seeds {', '.join(map(str, DECISION_SEEDS))}: defaults and rules were chosen "
                            "on these (they are not evidence)",
                "other": "Other seeds"}


def _variants(rows: list[dict], model: str, final: int, nfe: int, export: str) -> dict[str, dict[str, float]]:
    get = {r["method"]: r for r in rows if r["model"] == model and r["iteration"] == final and r["nfe"] == nfe
           and (r["main"] or r["method"] != "LCSC")}
    methods = VARIANTS | {_EXPORT_VARIANT[export]: "LCSC"}
    return {v: {k: get[m][k] for k in spaces_in(get[m])} for v, m in methods.items() if m in get}


def _row(payload: dict[str, Any], key: str, model: str) -> dict[str, Any]:
    rows, final = payload["rows"], payload["config"]["iterations"]
    get = {(r["method"], r["iteration"]): r for r in rows if r["model"] == model and r["main"]}
    star, lcsc = get[("EMA*", final)], get[("LCSC", final)]
    early = next(r for (m, it), r in get.items() if m == "LCSC" and it < final)
    match = payload["nfe_match"].get(key, {})
    low = next((m for k, m in payload["nfe_match"].items() if k.startswith(f"{key}@")
                and m["lcsc_nfe"] < lcsc["nfe"]), {})
    return {"seed": payload["config"]["seed"], "model": model, "ema_star": star["detail"],
            "ema": {k: star[k] for k in spaces_in(star)}, "lcsc": {k: lcsc[k] for k in spaces_in(lcsc)},
            "variants": _variants(rows, model, final, lcsc["nfe"], payload.get("export", "alg1")),
            "guard": lcsc.get("detail", ""), "export": payload.get("export", "alg1"),
            "low_nfe": low.get("lcsc_nfe"), "low_nfe_reach": low.get("ema_star_nfe"), "low_by_space": low.get("by_space"),
            "low_reach_text": f"LCSC@{low['lcsc_nfe']} ≈ EMA*@{low['ema_star_nfe']}" if low else None,
            "beats_everywhere": holds_everywhere(lcsc, star),
            "speedup": early["speedup"]["speedup_iters"], "speedup_claimed": early["speedup"]["claimed"],
            "speedup_with_search": early["speedup"]["speedup_with_search"],
            "nfe": match.get("ema_star_nfe"), "lcsc_nfe": match.get("lcsc_nfe"), "nfe_claimed": match.get("claimed"),
            "interior": all(payload["ema_star_interior"][key].values()),
            "edges": [p for p, ok in payload["ema_star_interior"][key].items() if not ok],
            "other": _other(payload, key, model, lcsc["nfe"])}


def _other(payload: dict[str, Any], key: str, model: str, nfe: int) -> dict[str, Any] | None:
    """The search beside the export (``other_method``) at the end of training: its FDs, its NFE match (from
    report.json, or computed from the EMA* rows at every NFE) and its speed-up at the early point."""
    method, rows, final = payload.get("other_method"), payload["rows"], payload["config"]["iterations"]
    mine = [r for r in rows if r["model"] == model and r["method"] == method and r["main"]]
    end = next((r for r in mine if r["iteration"] == final), None)
    if end is None:
        return None
    early = next((r for r in mine if r["iteration"] < final and r.get("speedup")), None)
    curve = sorted((r for r in rows if r["model"] == model and r["method"] == "EMA*" and r["iteration"] == final),
                   key=lambda r: r["nfe"])
    match = payload["nfe_match"].get(f"{key}@{nfe}") or nfe_match([r["nfe"] for r in curve], curve, end, nfe)
    return {"method": method, "fd": {k: end[k] for k in spaces_in(end)}, "nfe": match["ema_star_nfe"],
            "nfe_claimed": match["claimed"], "by_space": match["by_space"],
            "speedup": early["speedup"]["speedup_iters"] if early else None,
            "speedup_with_search": early["speedup"]["speedup_with_search"] if early else None,
            "speedup_claimed": early["speedup"]["claimed"] if early else None}


def seed_rows(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per (report, model): the headline quantities of that seed."""
    return [_row(p, key, model) for p in payloads for key, model in p["models"].items()]


def _yes(v: bool | None) -> str:
    return "—" if v is None else ("yes" if v else "**no**")


def _keys(*values: dict[str, float]) -> tuple[str, ...]:
    """The spaces every one of ``values`` has (FD4 on report noise only)."""
    return tuple(k for k in ALL_SPACES if all(k in v for v in values))


def _fds(values: dict[str, float] | None, base: dict[str, float] | None = None) -> str:
    if values is None:
        return "—"
    keys = _keys(values, base) if base is not None else _keys(values)
    text = " / ".join(f"{values[k]:{'.1f' if k == 'fd_mean' else '.3f'}}" for k in keys)
    if base is not None:
        text += f" ({sum(values[k] < base[k] for k in keys)}/{len(keys)})"
    return text


def _space_names(rows: list[dict[str, Any]]) -> str:
    keys = _keys(*(r["ema"] for r in rows))
    return " / ".join(SPACE_NAMES[k] for k in keys)


def _headline_table(rows: list[dict[str, Any]]) -> list[str]:
    names = _space_names(rows)
    out = [f"| Seed | Model | EMA* | EMA* {names} | LCSC {names} | LCSC beats EMA* "
           "everywhere | Speed-up at the early point (all spaces; with search) | EMA* NFE matching LCSC | EMA* NFE "
           "matching the DM's gradient search at NFE 4 (per space) | EMA* interior |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["seed"])):
        speed = f"{r['speedup']:.2f}× ({r['speedup_with_search']:.2f}×){'' if r['speedup_claimed'] else ', not claimed'}"
        nfe = "—" if r["nfe"] is None else f"LCSC@{r['lcsc_nfe']} ≈ EMA*@{r['nfe']}" + \
            ("" if r["nfe_claimed"] else ", not claimed")
        edges = "" if r["interior"] else f" (edge at {', '.join(r['edges'])})"
        low = "—" if not r.get("low_by_space") else f"{r['low_reach_text']}: " + " / ".join(r["low_by_space"].values())
        out.append(f"| {r['seed']} | {r['model']} | {r['ema_star']} | {_fds(r['ema'])} | {_fds(r['lcsc'])} | "
                   f"{_yes(r['beats_everywhere'])} | {speed} | {nfe} | {low} | {_yes(r['interior'])}{edges} |")
    return out


def _other_table(rows: list[dict[str, Any]]) -> list[str]:
    """The search beside the export, with the same headline columns."""
    mine = [r for r in rows if r.get("other")]
    if not mine:
        return []
    names = _space_names(mine)
    out = [f"The search beside the export ({mine[0]['other']['method']}), same rows:", "",
           f"| Seed | Model | {mine[0]['other']['method']} {names} | beats EMA* everywhere | Speed-up at the early "
           "point (all spaces; with search) | EMA* NFE matching it (per space) |", "|---|---|---|---|---|---|"]
    for r in sorted(mine, key=lambda r: (r["model"], r["seed"])):
        o = r["other"]
        speed = "—" if o["speedup"] is None else f"{o['speedup']:.2f}× ({o['speedup_with_search']:.2f}×)" + \
            ("" if o["speedup_claimed"] else ", not claimed")
        everywhere = all(o["fd"][k] < r["ema"][k] for k in _keys(o["fd"], r["ema"]))
        out.append(f"| {r['seed']} | {r['model']} | {_fds(o['fd'], r['ema'])} | {_yes(everywhere)} | {speed} | "
                   f"EMA*@{o['nfe']}{'' if o['nfe_claimed'] else ', not claimed'}: "
                   + " / ".join(o["by_space"].values()) + " |")
    return out + [""]


def _variant_table(rows: list[dict[str, Any]]) -> list[str]:
    """Held-out FD at the end of training of EMA* and every LCSC variant; (n/3): spaces where it beats EMA*."""
    out = ["| Seed | Model | EMA* | " + " | ".join(f"LCSC {v}" for v in VARIANTS) + " | guard |",
           "|---|---|---|" + "---|" * len(VARIANTS) + "---|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["seed"])):
        cells = " | ".join(_fds(r["variants"].get(v), r["ema"]) for v in VARIANTS)
        guard = r["guard"].split("; ", 1)[1] if "; " in r["guard"] else "—"
        out.append(f"| {r['seed']} | {r['model']} | {_fds(r['ema'])} | {cells} | {guard} |")
    return out


def _summary(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        n = len(mine)
        pairs = {v: sum(r["variants"][v][k] < r["ema"][k] for r in mine if v in r["variants"]
                        for k in _keys(r["variants"][v], r["ema"])) for v in VARIANTS}
        total = {v: sum(len(_keys(r["variants"][v], r["ema"])) for r in mine if v in r["variants"]) for v in VARIANTS}
        wins = "; ".join(f"{v} {pairs[v]} of {total[v]}" for v in VARIANTS if total[v])
        gain = 100 * float(np.mean([r["lcsc"]["fd_mean"] / r["ema"]["fd_mean"] - 1 for r in mine]))
        twice = [r for r in mine if isinstance(r.get("low_nfe_reach"), (int, float))]
        fast = sum(r["speedup"] >= 4 for r in mine)
        others = [r["other"] for r in mine if r.get("other")]
        beside = "" if not others else f" ({others[0]['method']} beside it: " + \
            f"{100 * float(np.mean([o['fd']['fd_mean'] / r['ema']['fd_mean'] - 1 for o, r in zip(others, mine)])):+.1f} %)"
        out.append(f"- **{model}**: the export's FD_digits vs EMA*, mean over seeds {gain:+.1f} %{beside}; speed-up ≥ 4× in "
                   f"every space on {fast} of {n}, > 1× with the search counted on "
                   f"{sum(r['speedup_with_search'] > 1 for r in mine)} of {n}"
                   + (f"; LCSC searched at NFE {twice[0]['low_nfe']} reached by EMA* only at ≥ 2× its NFE in every "
                      f"space on {sum(r['low_nfe_reach'] >= 2 * r['low_nfe'] for r in twice)} of {n}" if twice else "")
                   + ".")
        out.append(f"- **{model}** ({n} seed{'s' if n != 1 else ''}): LCSC beats EMA* in every space on "
                   f"{sum(r['beats_everywhere'] for r in mine)} of {n}; (seed, space) pairs where LCSC is lower than "
                   f"EMA*: {wins or '—'}; training-cost speed-up claimed on "
                   f"{sum(r['speedup_claimed'] for r in mine)} of {n}; NFE reduction claimed on "
                   f"{sum(bool(r['nfe_claimed']) for r in mine)} of {n}; EMA* interior at every point on "
                   f"{sum(r['interior'] for r in mine)} of {n}.")
    return out


def seed_table(payloads: list[dict[str, Any]]) -> str:
    """Markdown, one section per protocol role (report seeds first): the headline table, every LCSC variant's
    held-out FD at the end of training against EMA*, and per model what holds on every seed."""
    rows = seed_rows(payloads)
    out = []
    for role in ("report", "decision", "other"):
        mine = [r for r in rows if seed_role(r["seed"]) == role]
        if not mine:
            continue
        objectives = sorted({p["config"].get("search_objective", "?") for p in payloads
                             if seed_role(p["config"]["seed"]) == role})
        out += [f"## {_ROLE_TITLES[role]}", "", "Search objective: " + ", ".join(f"`{o}`" for o in objectives) + ".",
                "", *_headline_table(mine), "", *_other_table(mine),
                f"Held-out {_space_names(mine)} at the end of training; (n/m): spaces where the variant is lower "
                "than EMA*. The export's column (Algorithm 1's unless the run says `export: gradient`) is the demo's LCSC (the rows above).", "", *_variant_table(mine), "",
                *_summary(mine), ""]
    return "\n".join(out)


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
            "--seed S` runs (held-out FD means; a headline counts only where it holds in FD_digits, FD2, FD3 and, on report noise, the report-only FD4). "
            "Made with `python -m lcsc.analysis.seed_table REPORT.json … -o seeds.md`.\n\n"
            + seed_table(payloads))
    if args.output:
        write_text(args.output, text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
