"""The demo's headline sentences and tables, from report.json alone: a claim only where it holds in every space."""

from __future__ import annotations

from typing import Any

from lcsc.spaces import SPACE_NAMES, spaces_in

__all__ = ["verdicts", "curve_table", "speedup_table", "nfe_table", "space_labels"]

_NAMES = SPACE_NAMES
_FMT = {"fd_mean": "{:.2f}", "fd2_mean": "{:.3f}", "fd3_mean": "{:.3f}", "fd4_mean": "{:.3f}"}


def _names(keys) -> str:
    return " / ".join(_NAMES[k] for k in keys)


def space_labels(objective: str) -> dict[str, str]:
    """``fd_mean`` → "FD_digits (searched)", … : which spaces the search saw."""
    searched = {"fd_mean"} | ({"fd2_mean"} if "fd-digits2" in objective else set())
    out = {k: f"{n} ({'searched' if k in searched else 'never searched'})" for k, n in _NAMES.items()}
    return out | {"fd4_mean": "FD4 (report-only, never searched)"}


def _get(rows: list[dict], model: str, method: str, iteration: int, nfe: int | None = None) -> dict | None:
    for r in rows:
        if (r["model"], r["method"], r["iteration"]) == (model, method, iteration) and \
                (r["main"] if nfe is None else r["nfe"] == nfe):
            return r
    return None


def _pct(base: float, value: float) -> str:
    return f"{100 * (value / base - 1):+.1f} %"


def _final(model: str, rows: list[dict], final: int, labels: dict[str, str]) -> list[str]:
    star, lcsc = _get(rows, model, "EMA*", final), _get(rows, model, "LCSC", final)
    keys = spaces_in(lcsc, star)
    parts = [f"{labels[k]} {_FMT[k].format(lcsc[k])} vs {_FMT[k].format(star[k])} ({_pct(star[k], lcsc[k])})"
             for k in keys]
    higher = [k for k in keys if lcsc[k] >= star[k]]
    if not higher:
        claim = "**LCSC beats EMA\\* in every space**"
    elif len(higher) == len(keys):
        claim = "**LCSC does not beat EMA\\***"
    else:
        unseen = [k for k in higher if "never" in labels[k]]
        why = "**not supported outside the searched space**" if unseen else \
            f"**no claim** (a headline needs all {len(keys)} spaces, and a searched one fails on held-out noise)"
        claim = f"LCSC is not lower in {', '.join(_NAMES[k] for k in higher)}: {why}"
    wins = sum(b < a for a, b in zip(star["fd_per_seed"], lcsc["fd_per_seed"]))
    return [f"- **{model}** at {final} (NFE {lcsc['nfe']}), LCSC vs EMA\\* ({star['detail']}), held-out: "
            + "; ".join(parts) + f" → {claim} (FD_digits lower on {wins} of {len(star['fd_per_seed'])} seeds)."]


def _speedup(model: str, rows: list[dict], final: int) -> list[str]:
    out = []
    for r in rows:
        if r["model"] != model or r["method"] != "LCSC" or r["iteration"] >= final or not r.get("speedup"):
            continue
        s = r["speedup"]
        keys = list(s["by_space"])
        reach = " / ".join(s["crossings"][k]["label"] for k in keys)
        ratio = " / ".join(f"{s['by_space'][k]:.2f}×" for k in keys)
        with_search = " / ".join(f"{s['with_search_by_space'][k]:.2f}×" for k in keys)
        head = f"  Training cost: EMA\\* first reaches LCSC-at-{r['iteration']}'s held-out FD at iteration {reach} " \
               f"({_names(keys)}): speed-up {ratio}; counting the search's wall time as training: {with_search}"
        if s["claimed"]:
            bound = "≥ " if s["lower_bound"] else ""
            out.append(head + f" → **training-cost speed-up {bound}{s['speedup_iters']:.2f}× in every space** "
                              f"({s['speedup_with_search']:.2f}× with the search).")
        else:
            out.append(head + " → **no training-cost speed-up is supported in every space**.")
    return out


def _nfe(model_key: str, model: str, match: dict[str, Any] | None) -> list[str]:
    if not match:
        return []
    per = " / ".join(match["by_space"].values())
    method = match.get("method", "LCSC")
    head = f"  NFE: EMA\\* at the end of training matches {method} (searched at NFE {match['lcsc_nfe']}) at NFE " \
           f"{per} ({_names(match['by_space'])})"
    m = match["ema_star_nfe"]
    ratio = f"{m / match['lcsc_nfe']:.2f}×" if isinstance(m, (int, float)) else f"more than {m.removeprefix('> ')} NFE"
    if match["claimed"]:
        return [head + f" → **{method} at {match['lcsc_nfe']} NFE matches EMA\\* at {m} NFE in every space** (EMA\\* "
                       f"needs {ratio} the NFE)."]
    return [head + " → **no NFE reduction is supported in every space**."]


def _other(model: str, rows: list[dict], final: int, method: str | None) -> list[str]:
    """The search that is not the export (Alg. 1, the paper's method, or the gradient search) vs EMA* at the end."""
    other, star = (_get(rows, model, method, final), _get(rows, model, "EMA*", final)) if method else (None, None)
    if other is None or star is None:
        return []
    keys = spaces_in(other, star)
    vs = " / ".join(_pct(star[k], other[k]) for k in keys)
    lower = sum(other[k] < star[k] for k in keys)
    return [f"  {method} at {final} vs EMA\\*: {vs} ({_names(keys)}); lower in {lower} of {len(keys)} spaces."]


def _grid_flags(model_key: str, res: dict[str, Any]) -> str:
    interior = res["ema_star_interior"].get(model_key, {})
    edge = [f"{p} ({res['ema_star'][model_key][p]})" for p, ok in interior.items() if not ok]
    if not edge:
        return f"  EMA\\* is interior to its grid at all {len(interior)} points."
    return f"  **EMA\\* sits on a grid edge** at {', '.join(edge)}: that EMA\\* may be under-tuned."


def verdicts(res: dict[str, Any]) -> list[str]:
    """Plain sentences from a report.json dict: beats EMA* at the end, training-cost speed-up, NFE reduction, grid."""
    rows, final = res["rows"], res["config"]["iterations"]
    labels = space_labels(res["config"]["search_objective"])
    out = []
    for key, model in res["models"].items():
        out += _final(model, rows, final, labels)
        out += _other(model, rows, final, res.get("other_method"))
        out += _speedup(model, rows, final)
        out += _nfe(key, model, res["nfe_match"].get(key))
        for low in sorted(k for k in res["nfe_match"] if k.startswith(f"{key}@")):
            out += _nfe(low, model, res["nfe_match"][low])
        out.append(_grid_flags(key, res))
    return out


def curve_table(res: dict[str, Any]) -> str:
    """EMA* held-out FDs at every training point (EMA at the main table's points), with EMA* and whether it is
    interior."""
    keys = spaces_in(*res["rows"])
    lines = ["| Model | Iter | " + " | ".join(f"EMA {_NAMES[k]}" for k in keys) + " | "
             + " | ".join(f"EMA* {_NAMES[k]}" for k in keys) + " | EMA* | interior |",
             "|---|---|" + "---|" * (2 * len(keys) + 2)]
    for key, model in res["models"].items():
        for p in res["config"]["points"]:
            e, s = _get(res["rows"], model, "EMA", p, _nfe_of(res, model)), \
                _get(res["rows"], model, "EMA*", p, _nfe_of(res, model))
            vals = [_FMT[k].format(e[k]) if e else "—" for k in keys] + [_FMT[k].format(s[k]) for k in keys]
            ok = res["ema_star_interior"][key][str(p)]
            lines.append(f"| {model} | {p} | " + " | ".join(vals) + f" | {s['detail']} | {'yes' if ok else '**edge**'} |")
    return "\n".join(lines)


def _nfe_of(res: dict[str, Any], model: str) -> int:
    return next(r["nfe"] for r in res["rows"] if r["model"] == model and r["main"])


def speedup_table(res: dict[str, Any]) -> str:
    lines = ["| Model | LCSC iter | Space | LCSC FD | EMA* reaches it at | Speed-up | With search |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        s = r.get("speedup")
        if not r["method"].startswith("LCSC") or not s:
            continue
        for k in s["by_space"]:
            who = r["model"] + ("" if r["method"] == "LCSC" else f" ({r['method']})")
            lines.append(f"| {who} | {r['iteration']} | {_NAMES[k]} | {_FMT[k].format(r[k])} | "
                         f"{s['crossings'][k]['label']} | {s['by_space'][k]:.2f}× | "
                         f"{s['with_search_by_space'][k]:.2f}× |")
    return "\n".join(lines)


def nfe_table(res: dict[str, Any]) -> str:
    """Held-out FD of EMA* and LCSC at the end of training against NFE, one line per model, method and space."""
    out, final = [], res["config"]["iterations"]
    for model in res["models"].values():
        rows = [r for r in res["rows"] if r["model"] == model and r["iteration"] == final
                and r["method"] in ("EMA*", "LCSC")]
        nfes = sorted({r["nfe"] for r in rows})
        out += [f"| {model} | Method | Space | " + " | ".join(f"NFE {n}" for n in nfes) + " |",
                "|---|---|---|" + "---|" * len(nfes)]
        for method in ("EMA*", "LCSC"):
            by = {r["nfe"]: r for r in rows if r["method"] == method}
            for k in spaces_in(*rows):
                out.append(f"| {model} | {method} | {_NAMES[k]} | "
                           + " | ".join(_FMT[k].format(by[n][k]) if n in by else "—" for n in nfes) + " |")
        out.append("")
    return "\n".join(out)
