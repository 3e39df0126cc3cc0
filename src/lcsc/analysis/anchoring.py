"""Anchoring decisions (issue: LCSC that never loses to EMA*): on a finished demo run of a decision seed, score on
*check* noise (never the demo's report noise, :mod:`lcsc.protocol`) EMA*, the window-only search, the anchored search
with its validation guard, its unguarded best and its shrunk variants (the demo's own searches, resumed from their
journals), and search the final window again with the variants the demo does not run — the other objective
(:func:`alternative_objective`) and the DM at NFE 10 instead of 5."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from lcsc import protocol
from lcsc.errors import ConfigError
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.scoring import Scorer
from lcsc.experiment.stages import (
    ModelRun,
    ema_state_named,
    held_out_row,
    lcsc_grad_search,
    lcsc_search,
    lcsc_state,
    search_dir,
    shrunk,
    train_seconds_at,
)
from lcsc.spaces import SPACES

__all__ = ["load_demo", "decision_rows", "alternative_objective", "wins"]

_KEYS = {"dm": "dm", "cm-ct": "cm"}


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


def _held(run: ModelRun, cfg: DemoConfig, scorer: Scorer, state, nfe: int | None = None) -> dict[str, float]:
    held = held_out_row(run, cfg, scorer, state, nfe, full=False)
    return {k: getattr(held, k) for k in SPACES}


def _demo_variants(folder: Path, cfg: DemoConfig, scorer: Scorer, run: ModelRun, star: str,
                   research: bool = True) -> dict[str, dict]:
    """EMA*, window only (searched now unless the demo has it, and only with ``research``), anchored + guard,
    unguarded and shrunk, gradient + guard (when the demo ran it), from the demo's own searches (journals reused)."""
    final, evals = cfg.iterations, cfg.search_evals(run.name)
    rows = {"EMA*": _held(run, cfg, scorer, ema_state_named(run, star, final))}
    if research or (search_dir(folder, run.name, final, "window") / "journal.jsonl").is_file():
        window = lcsc_search(run, cfg, scorer, final, evals, folder, progress=False)
        rows["window only"] = _held(run, cfg, scorer, lcsc_state(window))
    if cfg.gradient:
        grad = lcsc_grad_search(run, cfg, scorer, final, folder, progress=False, star=star)
        rows["gradient + guard"] = _held(run, cfg, scorer, lcsc_state(grad))
    search = lcsc_search(run, cfg, scorer, final, evals, folder, progress=False, star=star)
    rows["anchored + guard"] = _held(run, cfg, scorer, lcsc_state(search))
    res = search.result
    same = res.search_best is None or np.array_equal(res.search_best, res.best)
    rows["unguarded"] = rows["anchored + guard"] if same else \
        _held(run, cfg, scorer, lcsc_state(search, a=res.search_best))
    for lam in cfg.shrink_lambdas if res.best_anchor is not None else ():
        rows[f"shrink {lam:g}"] = _held(run, cfg, scorer, lcsc_state(search, a=shrunk(search, lam)))
    if run.name == "dm":
        rows["EMA* @ NFE 10"] = _held(run, cfg, scorer, ema_state_named(run, star, final), 10)
        rows["anchored (searched at 5) @ NFE 10"] = _held(run, cfg, scorer, lcsc_state(search), 10)
    return rows


def _searched(cfg: DemoConfig, data, run: ModelRun, star: str, out: Path) -> tuple[dict, float]:
    scorer = Scorer(cfg, data)
    search = lcsc_search(run, cfg, scorer, cfg.iterations, cfg.search_evals(run.name), out, progress=False, star=star)
    return _held(run, cfg, scorer, lcsc_state(search), run.nfe), search.seconds


def alternative_objective(objective: str) -> tuple[str, str]:
    """The variant searched beside the demo's objective: (label, objective) — the worst-space ``max:`` beside the
    mean, the mean beside ``max:``."""
    if objective.startswith("max:"):
        return "mean + guard", "mean:fd-digits,fd-digits2"
    return "max + guard", "max:fd-digits,fd-digits2"


def decision_rows(folder: Path, cfg: DemoConfig, report: dict, name: str, data, work: Path,
                  research: bool = True) -> dict[str, Any]:
    """variant → check-noise FD means (decision spaces) at the end of training, and the new searches' seconds;
    ``research=False`` scores the demo's own searches only (no alternative objective, NFE 10 or window-only
    search)."""
    protocol.check_training_seed(cfg.seed, "the anchoring decisions")
    cfg = dataclasses.replace(cfg, held_out_noise="decision")
    star = report["ema_star"][_KEYS[name]][str(cfg.iterations)]
    run = ModelRun(name, folder / name, cfg.dm_nfe if name == "dm" else cfg.cm_nfe, train_seconds_at(folder / name))
    with protocol.deciding(f"anchoring decisions seed {cfg.seed} {name}"):
        rows = _demo_variants(folder, cfg, Scorer(cfg, data), run, star, research)
        seconds: dict[str, float] = {}
        if not research:
            return {"rows": rows, "seconds": seconds}
        label, other = alternative_objective(cfg.search_objective)
        alt = dataclasses.replace(cfg, search_objective=other)
        rows[label], seconds[label] = _searched(alt, data, run, star, work / label.split()[0])
        if name == "dm":
            key = "anchored searched @ NFE 10"
            rows[key], seconds[key] = _searched(cfg, data, dataclasses.replace(run, nfe=10), star, work / "nfe10")
    return {"rows": rows, "seconds": seconds}


def wins(rows: dict[str, dict[str, float]], base: str = "EMA*") -> dict[str, int]:
    """variant → in how many spaces it is lower than ``base``."""
    if base not in rows:
        return {}
    return {v: sum(r[k] < rows[base][k] for k in SPACES) for v, r in rows.items() if v != base}
