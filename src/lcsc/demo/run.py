"""``run_demo``: the LCSC paper's headline on the embedded digits — DM and CM, EMA / EMA* / LCSC, held-out noise."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lcsc.checkpoints.anchors import state_dict_sha256
from lcsc.data import load_digits_data
from lcsc.demo.estimate import estimate_parts
from lcsc.demo.exports import write_models
from lcsc.experiment.clock import StageClock
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.headlines import nfe_match, speedup
from lcsc.experiment.scoring import HeldOutScore, Scorer
from lcsc.experiment.stages import (
    ModelRun,
    SearchRun,
    ema_grid_scores,
    ema_star_choice,
    ema_state_named,
    held_out_row,
    lcsc_grad_search,
    lcsc_search,
    lcsc_state,
    parallel_training,
    shrunk,
    train_model,
    train_pair,
)
from lcsc.metrics.evaluate import KID_SCALE
from lcsc.spaces import ALL_SPACES
from lcsc.training.ema import ema_name

__all__ = ["DemoRow", "DemoResult", "run_demo", "MODEL_LABELS"]

MODEL_LABELS = {"dm": "DM", "cm-ct": "CM (CT)", "cm-cd": "CM (CD)"}


@dataclass
class DemoRow:
    """One held-out row. ``main``: shown in the main table (KID, precision and recall are scored only there)."""

    model: str
    method: str
    iteration: int
    nfe: int
    score: HeldOutScore
    detail: str = ""
    initial: HeldOutScore | None = None  # LCSC rows: the search's best initial individual, scored the same way
    main: bool = True
    headline: dict[str, Any] | None = None  # LCSC at the early point: the training-cost speed-up per space

    def to_dict(self) -> dict[str, Any]:
        s, h = self.score, self.headline or {}
        out = {"model": self.model, "method": self.method, "iteration": self.iteration, "nfe": self.nfe,
               "fd_mean": s.fd_mean, "fd_std": s.fd_std, "fd2_mean": s.fd2_mean, "fd2_std": s.fd2_std,
               "fd3_mean": s.fd3_mean, "fd3_std": s.fd3_std, "fd4_mean": s.fd4_mean, "fd4_std": s.fd4_std, "kid_x1e3": KID_SCALE * s.kid, "precision": s.precision,
               "recall": s.recall, "fid": s.fid, "detail": self.detail, "fd_per_seed": list(s.fd_per_seed),
               "main": self.main, "speedup_iters": h.get("speedup_iters"),
               "speedup_with_search": h.get("speedup_with_search"), "speedup": h or None,
               "initial": None if self.initial is None else
               {k: getattr(self.initial, k) for k in ALL_SPACES if math.isfinite(getattr(self.initial, k))}}
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


@dataclass
class DemoResult:
    config: DemoConfig
    out: Path
    rows: list[DemoRow]
    runs: dict[str, ModelRun]
    searches: dict[str, dict[int, SearchRun]]
    ema_star: dict[str, dict[int, str]]
    interior: dict[str, dict[int, bool]] = field(default_factory=dict)
    nfe_match: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    estimate_s: float = 0.0
    estimate_parts: dict[str, float] = field(default_factory=dict)
    window_searches: dict[str, SearchRun] = field(default_factory=dict)  # the window-only search at the end
    other_searches: dict[str, dict[int, SearchRun]] = field(default_factory=dict)  # the method not exported
    low_nfe_searches: dict[str, SearchRun] = field(default_factory=dict)  # the DM's gradient search at dm_low_nfe
    models: dict[str, Any] = field(default_factory=dict)  # the exported model files (lcsc.demo.exports)

    @property
    def other_method(self) -> str:
        """The row label of the search that is not the export: "LCSC Alg. 1" or "LCSC gradient"."""
        return other_label(self.config)


def run_demo(cfg: DemoConfig, out: str | Path, *, progress: bool = True,
             on_stage: Callable[[str, dict], None] | None = None) -> DemoResult:
    """Train, baseline, search and score everything; resumable (finished stages are reused from ``out``)."""
    out, clock = Path(out), StageClock(on_stage)
    data = load_digits_data()
    scorer = clock.run("feature spaces and references", Scorer, cfg, data, progress)
    parts = clock.run("estimate", estimate_parts, cfg, scorer, data)
    estimate = clock.stages["feature spaces and references"] + sum(parts.values())
    if on_stage:
        on_stage("estimate", {"seconds": estimate})
    names = ["dm", "cm-ct"] + (["cm-cd"] if cfg.cd else [])
    runs: dict[str, ModelRun] = {}
    if parallel_training(cfg):
        runs = clock.run("train dm ‖ cm-ct", train_pair, cfg, out, progress)
    for name in (n for n in names if n not in runs):
        teacher = runs["dm"].run_dir / "ema" / ema_name(half_life=cfg.default_half_life) / \
            f"ema-{cfg.iterations:09d}.safetensors" if name == "cm-cd" else None
        runs[name] = clock.run(f"train {name}", train_model, name, cfg, out, data, teacher, progress)
    ema_star, interior, searches, window = {}, {}, {}, {}
    others: dict[str, dict[int, SearchRun]] = {}
    low: dict[str, SearchRun] = {}
    for name, run in runs.items():
        clock.run(f"EMA* grid {name}", _grids, run, cfg, scorer, progress)
        choices = {p: ema_star_choice(cfg, finalists) for p, finalists in run.ema_finalists.items()}
        ema_star[name] = {p: c[0] for p, c in choices.items()}
        interior[name] = {p: c[1] for p, c in choices.items()}
        evals, star = cfg.search_evals(name), (ema_star[name] if cfg.anchored else {})
        alg1 = {p: clock.run(f"LCSC {name}@{p}", lcsc_search, run, cfg, scorer, p, evals, out, progress,
                             star.get(p)) for p in cfg.lcsc_points}
        grad = {p: clock.run(f"LCSC gradient {name}@{p}", lcsc_grad_search, run, cfg, scorer, p, out, progress,
                             star.get(p)) for p in cfg.lcsc_points} if cfg.gradient else {}
        if grad and name == "dm" and cfg.dm_low_nfe:
            low[name] = clock.run(f"LCSC gradient {name}@{cfg.iterations} NFE {cfg.dm_low_nfe}", lcsc_grad_search,
                                  run, cfg, scorer, cfg.iterations, out, progress, star.get(cfg.iterations),
                                  cfg.dm_low_nfe)
        searches[name], others[name] = (grad, alg1) if cfg.export == "gradient" else (alg1, grad)
        if cfg.anchored and cfg.window_only_baseline:
            window[name] = clock.run(f"LCSC {name}@{cfg.iterations} window only", lcsc_search, run, cfg, scorer,
                                     cfg.iterations, evals, out, progress)
    extra = Extra(others, low, window)
    rows, matches = clock.run("held-out evaluation", _rows, cfg, scorer, runs, ema_star, searches, progress, extra)
    _search_stage_times(clock, runs, searches, extra, cfg)
    result = DemoResult(cfg, out, rows, runs, searches, ema_star, interior, matches, clock.stages, estimate, parts,
                        window, others, low)
    clock.run("models", write_models, result)
    return result


@dataclass
class Extra:
    """The searches beside the export: the other method's (Alg. 1 or gradient) per point, the DM's low-NFE gradient
    search, and the window-only one."""

    others: dict[str, dict[int, SearchRun]]
    low: dict[str, SearchRun]
    window: dict[str, SearchRun]


def _search_stage_times(clock: StageClock, runs, searches, extra: Extra, cfg: DemoConfig) -> None:
    """A resumed stage reports the time it took when it ran, not the reuse."""
    for name, run in runs.items():
        if f"train {name}" in clock.stages:
            clock.stages[f"train {name}"] = round(max(clock.stages[f"train {name}"], run.train_s), 2)
        for p in cfg.lcsc_points:
            for search in (searches[name].get(p), extra.others[name].get(p)):
                if search is not None:
                    key = f"LCSC {'gradient ' if search.result.gradient else ''}{name}@{p}"
                    clock.stages[key] = round(max(clock.stages.get(key, 0.0), search.seconds), 2)
        for key, search in ((f"LCSC gradient {name}@{cfg.iterations} NFE {cfg.dm_low_nfe}", extra.low.get(name)),
                            (f"LCSC {name}@{cfg.iterations} window only", extra.window.get(name))):
            if search is not None:
                clock.stages[key] = round(max(clock.stages.get(key, 0.0), search.seconds), 2)


def _grids(run: ModelRun, cfg: DemoConfig, scorer: Scorer, progress: bool) -> dict[int, dict[str, float]]:
    return {p: ema_grid_scores(run, cfg, scorer, p)
            for p in tqdm(cfg.points, desc=f"EMA* grid {run.name}", disable=not progress, leave=False)}


class _RowScorer:
    """Held-out scores of named states, computed once per (candidate, point, NFE) and once per weights: a search
    whose guard exported an anchor, or a best initial individual that is EMA*, reuses EMA*'s row (same weights, same
    noise: the same numbers)."""

    def __init__(self, run: ModelRun, cfg: DemoConfig, scorer: Scorer, bar) -> None:
        self.run, self.cfg, self.scorer, self.bar = run, cfg, scorer, bar
        self.cache: dict[tuple, HeldOutScore] = {}

    def __call__(self, key: str, point: int, state_fn, nfe: int, full: bool) -> HeldOutScore:
        for k in ((key, point, nfe, True), (key, point, nfe, full)):
            if k in self.cache:
                return self.cache[k]
        state = state_fn()
        weights = state_dict_sha256(state)
        for k in ((weights, nfe, True), (weights, nfe, full)):
            if k in self.cache:
                self.cache[(key, point, nfe, full)] = self.cache[k]
                return self.cache[k]
        score = held_out_row(self.run, self.cfg, self.scorer, state, nfe, full)
        self.cache[(key, point, nfe, full)] = self.cache[(weights, nfe, full)] = score
        self.bar.update(1)
        return score


def _rows(cfg: DemoConfig, scorer: Scorer, runs, ema_star, searches, progress: bool = False,
          extra: Extra | None = None):
    """Every held-out row, and where EMA* matches each LCSC in NFE (``"dm"``, ``"cm-ct"``: the export at the
    searched NFE; ``"dm@4"``: the DM's gradient search at the low NFE)."""
    rows: list[DemoRow] = []
    matches: dict[str, dict[str, Any]] = {}
    extra = extra or Extra({}, {}, {})
    with tqdm(desc="held-out rows", disable=not progress, leave=False) as bar:
        for name, run in runs.items():
            score = _RowScorer(run, cfg, scorer, bar)
            rows += _curve_rows(cfg, run, score, ema_star[name], searches[name], extra.others.get(name, {}))
            matches |= _nfe_rows(cfg, run, score, ema_star[name][cfg.iterations], extra.low.get(name), rows)
            if cfg.anchored:
                alg1 = searches[name] if cfg.export == "alg1" else extra.others[name]
                rows += _anchoring_rows(cfg, run, score, alg1[cfg.iterations], extra.window.get(name))
    return rows, matches


def _anchoring_rows(cfg: DemoConfig, run: ModelRun, score: _RowScorer, search: SearchRun,
                    window: SearchRun | None) -> list[DemoRow]:
    """At the end of training: the window-only search and the anchored search's best on the search noise shrunk
    toward the best anchor (not in the main table; benchmarks/anchoring.py scores the unguarded best too)."""
    label, final, res, rows = MODEL_LABELS[run.name], cfg.iterations, search.result, []
    if window is not None:
        s = score("window", final, lambda: lcsc_state(window), run.nfe, False)
        rows.append(DemoRow(label, "LCSC window only", final, run.nfe, s, main=False,
                            detail=f"K={window.merger.K}, {window.result.evaluations} evals, no anchors"))
    for lam in cfg.shrink_lambdas if res.best_anchor is not None else ():
        s = score(f"shrink-{lam:g}", final, lambda lam=lam: lcsc_state(search, a=shrunk(search, lam)), run.nfe, False)
        rows.append(DemoRow(label, f"LCSC shrink {lam:g}", final, run.nfe, s, main=False,
                            detail=f"{lam:g} of the way from {res.best_anchor_name} to the search-noise best"))
    return rows


def _curve_rows(cfg: DemoConfig, run: ModelRun, score: _RowScorer, ema_star: dict[int, str],
                searches: dict[int, SearchRun], others: dict[int, SearchRun]) -> list[DemoRow]:
    """EMA* at every curve point, the fixed EMA at the main table's points (it is no baseline to beat: EMA* is), LCSC
    (the export) and the other method's search at their points, with the training-cost speed-up of the early one."""
    label, default, rows = MODEL_LABELS[run.name], ema_name(half_life=cfg.default_half_life), []
    for method, names, main_points in (("EMA", {p: default for p in cfg.ema_points}, cfg.ema_points),
                                       ("EMA*", ema_star, cfg.lcsc_points)):
        for p in names:
            main = p in main_points
            state = score(names[p], p, lambda p=p, n=names[p]: ema_state_named(run, n, p), run.nfe, main)
            rows.append(DemoRow(label, method, p, run.nfe, state, detail=names[p], main=main))
    curve = [r.score.__dict__ for r in rows if r.method == "EMA*"]
    for method, key, group in (("LCSC", "lcsc", searches), (other_label(cfg), "other", others)):
        for p, search in group.items():
            row = DemoRow(label, method, p, run.nfe, score(key, p, lambda s=search: lcsc_state(s), run.nfe, True),
                          detail=_lcsc_detail(search))
            if method == "LCSC":
                row.initial = score("initial", p, lambda s=search: lcsc_state(s, initial=True), run.nfe, False)
            if p < cfg.iterations:
                core_s_per_iter = run.train_s * run.threads / cfg.iterations  # the search's cores ÷ training's
                row.headline = speedup(list(cfg.points), curve, row.score.__dict__, p,
                                       search.seconds * torch.get_num_threads() / core_s_per_iter)
            rows.append(row)
    return rows


def other_label(cfg: DemoConfig) -> str:
    """The row label of the search beside the export: "LCSC Alg. 1" or "LCSC gradient"."""
    return "LCSC Alg. 1" if cfg.export == "gradient" else "LCSC gradient"


def _lcsc_detail(search: SearchRun) -> str:
    """The method, K (window + anchors), its budget, and what the validation guard exported."""
    m, res = search.merger, search.result
    anchors = len(getattr(m, "anchors", []) or [])
    k = f"K={m.K}" + (f" ({m.K - anchors} + {anchors} anchors)" if anchors else "")
    if res.gradient:
        g = res.gradient
        picked = g["guard"]["picked"]
        return f"gradient, {k}, {g['steps_done']} steps × {g['settings']['batch_size']}; guard exported the " + \
            (f"anchor {picked.removeprefix('anchor ')}" if g["guard"].get("exported_anchor") else picked)
    text = f"Alg. 1, {k}, {res.evaluations} evals"
    reval = res.revalidation or {}
    if reval.get("exported_anchor"):
        text += f"; guard exported the anchor {res.best_name.removeprefix('anchor ')}"
    elif reval:
        text += f"; guard exported #{res.best_index}"
    return text


def _nfe_rows(cfg: DemoConfig, run: ModelRun, score: _RowScorer, star: str, low: SearchRun | None,
              rows: list[DemoRow]) -> dict[str, dict[str, Any]]:
    """EMA* at the end of training at every NFE of the model's list (paper Sec. 5.2), the low-NFE search at its
    NFE; where EMA* matches each LCSC (the export at the model's NFE, the low-NFE search at its own)."""
    label, final, nfes = MODEL_LABELS[run.name], cfg.iterations, list(cfg.dm_nfes if run.name == "dm" else cfg.cm_nfes)
    curve = []
    for n in nfes:
        s = score(star, final, lambda: ema_state_named(run, star, final), n, n == run.nfe)
        if n != run.nfe:
            rows.append(DemoRow(label, "EMA*", final, n, s, detail=star, main=False))
        curve.append(s.__dict__)
    lcsc = next(r for r in rows if r.model == label and r.method == "LCSC" and r.iteration == final and r.main)
    out = {run.name: nfe_match(nfes, curve, lcsc.score.__dict__, run.nfe) | {"method": "LCSC"}}
    other = next((r for r in rows if r.model == label and r.method == other_label(cfg) and r.iteration == final
                  and r.main), None)
    if other is not None:  # the search beside the export, at the same NFE
        out[f"{run.name}@{run.nfe}"] = nfe_match(nfes, curve, other.score.__dict__, run.nfe) | {"method": other.method}
    if low is not None:  # the gradient search at the low NFE
        n, method = cfg.dm_low_nfe, "LCSC" if cfg.export == "gradient" else other_label(cfg)
        s = score("low", final, lambda: lcsc_state(low), n, False)
        rows.append(DemoRow(label, method, final, n, s, main=False, detail=f"searched at NFE {n}; "
                            + _lcsc_detail(low)))
        out[f"{run.name}@{n}"] = nfe_match(nfes, curve, s.__dict__, n) | {"method": method}
    return out
