"""The demo report's anchoring section: at the end of training, EMA* vs the window-only search, the anchored search
(with its validation guard) and its shrunk variants, held-out in every space."""

from __future__ import annotations

from typing import Any

import numpy as np

from lcsc.spaces import SPACE_NAMES, spaces_in

__all__ = ["anchoring_section", "ANCHORING_METHODS", "anchor_weights"]

ANCHORING_METHODS = ("EMA*", "LCSC window only", "LCSC", "LCSC Alg. 1", "LCSC gradient", "LCSC shrink 0.5",
                     "LCSC shrink 0.75")
_LABELS = {"LCSC": "LCSC anchored + guard (exported)", "LCSC Alg. 1": "LCSC Alg. 1 anchored + guard",
           "LCSC gradient": "LCSC gradient anchored + guard"}


def anchor_weights(search) -> list[tuple[str, float]]:
    """(anchor name, coefficient) of the exported combination, first group."""
    m = search.merger
    anchors = getattr(m, "anchors", None) or []
    a = np.asarray(search.result.best).reshape(m.G, m.K)[0]
    return [(anchor["name"], float(a[len(m.steps) + j])) for j, anchor in enumerate(anchors)]


def _pct(base: float, value: float) -> str:
    return f"{100 * (value / base - 1):+.1f} %"


def _table(payload: dict[str, Any], model: str, final: int) -> list[str]:
    rows = {r["method"]: r for r in payload["rows"] if r["model"] == model and r["iteration"] == final
            and r["nfe"] == _searched_nfe(payload, model)}
    star = rows.get("EMA*")
    keys = spaces_in(*rows.values())
    names = [SPACE_NAMES[k] for k in keys]
    out = ["| Method | " + " | ".join(names) + f" | vs EMA* ({' / '.join(names)}) | Detail |",
           "|---|" + "---|" * (len(keys) + 2)]
    for method in ANCHORING_METHODS:
        r = rows.get(method)
        if r is None:
            continue
        vs = " / ".join(_pct(star[k], r[k]) for k in keys) if star and method != "EMA*" else "—"
        vals = " | ".join(f"{r[k]:.2f}" if k == "fd_mean" else f"{r[k]:.3f}" for k in keys)
        out.append(f"| {_LABELS.get(method, method)} | {vals} | {vs} | {r['detail']} |")
    return out


def _searched_nfe(payload: dict[str, Any], model: str) -> int:
    return next(r["nfe"] for r in payload["rows"] if r["model"] == model and r["method"] == "LCSC" and r["main"])


def anchoring_section(payload: dict[str, Any], res) -> list[str]:
    """Markdown lines (empty when the demo ran without anchors)."""
    if not res.config.anchored:
        return []
    final = res.config.iterations
    out = [r"## Anchoring: window-only vs anchored LCSC at the end of training (held-out)", "",
           r"The anchored search's stack is the window plus EMA\* at the window's end and the online EMAs at its "
           "start; each anchor alone, and each start EMA continued to the window's end, are initial individuals. The "
           f"export is the best on validation noise of the search's top {res.config.guard_finalists} and the best "
           "anchor (the anchor itself when nothing beats it there). \"Shrink λ\" is λ of the way from the best anchor "
           "to the search-noise best.", ""]
    for model in payload["models"].values():
        out += [f"**{model}**", "", *_table(payload, model, final), ""]
        search = res.searches[_run_name(res, model)][final]
        weights = ", ".join(f"{n} {w:+.3f}" for n, w in anchor_weights(search))
        if weights:
            out += [f"Anchor coefficients of the export: {weights}.", ""]
    return out


def _run_name(res, model: str) -> str:
    from lcsc.demo.run import MODEL_LABELS

    return next(n for n, label in MODEL_LABELS.items() if label == model and n in res.runs)
