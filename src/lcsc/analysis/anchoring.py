"""Anchoring decisions (issue: LCSC that never loses to EMA*): on a finished demo run, search the final window
again with the variants the demo does not run — the worst-space objective ``max:`` instead of the mean, and the DM at
NFE 10 instead of 5 — and score them on the demo's held-out noise beside the demo's own rows (EMA*, window-only,
anchored with the validation guard, unguarded, shrunk). Decisions use decision seeds only (:mod:`lcsc.protocol`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.demo.config import DemoConfig
from lcsc.demo.headlines import SPACES
from lcsc.demo.scoring import Scorer
from lcsc.demo.stages import ModelRun, held_out_row, lcsc_search, lcsc_state, train_seconds_at
from lcsc.errors import ConfigError

__all__ = ["DEMO_VARIANTS", "load_demo", "demo_rows", "searched_variants", "wins"]

DEMO_VARIANTS = {"EMA*": "EMA*", "window only": "LCSC window only", "anchored + guard": "LCSC",
                 "shrink 0.5": "LCSC shrink 0.5", "shrink 0.75": "LCSC shrink 0.75"}
_MODELS = {"dm": "DM", "cm-ct": "CM (CT)"}


def load_demo(folder: Path) -> tuple[DemoConfig, dict[str, Any]]:
    """The demo's resolved config and report.json from ``folder`` (a ``lcsc demo -o`` folder)."""
    try:
        saved = json.loads((folder / "report" / "config.json").read_text())
        report = json.loads((folder / "report" / "report.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder}: not a finished lcsc demo folder ({exc})") from None
    fields = {f.name for f in dataclasses.fields(DemoConfig)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in fields}
    return DemoConfig(**kw), report


def _row(report: dict, model: str, method: str, iteration: int, nfe: int) -> dict | None:
    return next((r for r in report["rows"] if r["model"] == model and r["method"] == method
                 and r["iteration"] == iteration and r["nfe"] == nfe), None)


def demo_rows(cfg: DemoConfig, report: dict, name: str) -> dict[str, dict[str, float]]:
    """variant → held-out FD means (the three spaces) at the end of training, from the demo's own rows."""
    model, nfe = _MODELS[name], cfg.dm_nfe if name == "dm" else cfg.cm_nfe
    out = {}
    for variant, method in DEMO_VARIANTS.items():
        row = _row(report, model, method, cfg.iterations, nfe)
        if row is not None:
            out[variant] = {k: row[k] for k in SPACES}
    if name == "dm":
        for method, variant in (("EMA*", "EMA* @ NFE 10"), ("LCSC", "anchored (searched at 5) @ NFE 10")):
            row = _row(report, model, method, cfg.iterations, 10)
            if row is not None:
                out[variant] = {k: row[k] for k in SPACES}
    return out


def _scored(cfg: DemoConfig, scorer: Scorer, run: ModelRun, star: str, out: Path) -> tuple[dict, float]:
    evals = cfg.search_evals(run.name)
    search = lcsc_search(run, cfg, scorer, cfg.iterations, evals, out, progress=False, star=star)
    held = held_out_row(run, cfg, scorer, lcsc_state(search), run.nfe, full=False)
    return {k: getattr(held, k) for k in SPACES}, search.seconds


def _unguarded(folder: Path, cfg: DemoConfig, scorer: Scorer, run: ModelRun, star: str, rows: dict) -> dict:
    """The demo's anchored search's best on the search noise (its journal is reused, nothing is searched again),
    held-out; the guarded row itself when the guard exported that best."""
    evals = cfg.search_evals(run.name)
    search = lcsc_search(run, cfg, scorer, cfg.iterations, evals, folder, progress=False, star=star)
    res = search.result
    if res.search_best is None or np.array_equal(res.search_best, res.best):
        return rows["anchored + guard"]
    held = held_out_row(run, cfg, scorer, lcsc_state(search, a=res.search_best), run.nfe, full=False)
    return {k: getattr(held, k) for k in SPACES}


def searched_variants(folder: Path, cfg: DemoConfig, report: dict, name: str, data, work: Path) -> dict[str, Any]:
    """The variants searched here: ``max`` (both models) and, for the DM, the mean objective at NFE 10."""
    key = {"dm": "dm", "cm-ct": "cm"}[name]
    star = report["ema_star"][key][str(cfg.iterations)]
    run = ModelRun(name, folder / name, cfg.dm_nfe if name == "dm" else cfg.cm_nfe, train_seconds_at(folder / name))
    out: dict[str, Any] = {"rows": {}, "seconds": {}}
    out["rows"]["unguarded"] = _unguarded(folder, cfg, Scorer(cfg, data), run, star, demo_rows(cfg, report, name))
    worst = dataclasses.replace(cfg, search_objective="max:fd-digits,fd-digits2")
    rows, secs = _scored(worst, Scorer(worst, data), run, star, work / "max")
    out["rows"]["max + guard"], out["seconds"]["max + guard"] = rows, secs
    if name == "dm":
        rows, secs = _scored(cfg, Scorer(cfg, data), dataclasses.replace(run, nfe=10), star, work / "nfe10")
        out["rows"]["anchored searched @ NFE 10"], out["seconds"]["anchored searched @ NFE 10"] = rows, secs
    return out


def wins(rows: dict[str, dict[str, float]], base: str = "EMA*") -> dict[str, int]:
    """variant → in how many spaces it is lower than ``base``."""
    if base not in rows:
        return {}
    return {v: sum(r[k] < rows[base][k] for k in SPACES) for v, r in rows.items() if v != base}
