"""``run_demo``: the LCSC paper's headline on the embedded digits — DM and CM, EMA / EMA* / LCSC, held-out noise."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lcsc.data import load_digits_data
from lcsc.demo.config import DemoConfig
from lcsc.demo.headlines import ALL_SPACES, nfe_match, speedup
from lcsc.demo.scoring import HeldOutScore, Scorer
from lcsc.demo.stages import (
    ModelRun,
    SearchRun,
    ema_grid_scores,
    ema_star_choice,
    ema_state_named,
    held_out_row,
    lcsc_search,
    lcsc_state,
    parallel_training,
    shrunk,
    train_model,
    train_pair,
)
from lcsc.metrics.evaluate import KID_SCALE
from lcsc.models import ModelConfig, build_model
from lcsc.training.ema import ema_name

__all__ = ["DemoRow", "DemoResult", "run_demo", "MODEL_LABELS", "unit_costs", "StageClock"]

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


class StageClock:
    """Runs named stages, keeps their wall times (s) and reports start / done to ``on_stage``."""

    def __init__(self, on_stage: Callable[[str, dict], None] | None) -> None:
        self.stages: dict[str, float] = {}
        self.on_stage = on_stage

    def run(self, name: str, fn, *args, **kw):
        if self.on_stage:
            self.on_stage("start", {"stage": name})
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        self.stages[name] = round(time.perf_counter() - t0, 2)
        if self.on_stage:
            self.on_stage("done", {"stage": name, "seconds": self.stages[name]})
        return out


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
    for name, run in runs.items():
        clock.run(f"EMA* grid {name}", _grids, run, cfg, scorer, progress)
        choices = {p: ema_star_choice(cfg, finalists) for p, finalists in run.ema_finalists.items()}
        ema_star[name] = {p: c[0] for p, c in choices.items()}
        interior[name] = {p: c[1] for p, c in choices.items()}
        evals = cfg.search_evals(name)
        searches[name] = {p: clock.run(f"LCSC {name}@{p}", lcsc_search, run, cfg, scorer, p, evals, out, progress,
                                       ema_star[name][p] if cfg.anchored else None) for p in cfg.lcsc_points}
        if cfg.anchored and cfg.window_only_baseline:
            window[name] = clock.run(f"LCSC {name}@{cfg.iterations} window only", lcsc_search, run, cfg, scorer,
                                     cfg.iterations, evals, out, progress)
    rows, matches = clock.run("held-out evaluation", _rows, cfg, scorer, runs, ema_star, searches, progress, window)
    for name, run in runs.items():  # a resumed stage reports the time it took when it ran, not the reuse
        if f"train {name}" in clock.stages:
            clock.stages[f"train {name}"] = round(max(clock.stages[f"train {name}"], run.train_s), 2)
        for p, search in searches[name].items():
            clock.stages[f"LCSC {name}@{p}"] = round(max(clock.stages[f"LCSC {name}@{p}"], search.seconds), 2)
        if name in window:
            key = f"LCSC {name}@{cfg.iterations} window only"
            clock.stages[key] = round(max(clock.stages[key], window[name].seconds), 2)
    return DemoResult(cfg, out, rows, runs, searches, ema_star, interior, matches, clock.stages, estimate, parts,
                      window)


def _grids(run: ModelRun, cfg: DemoConfig, scorer: Scorer, progress: bool) -> dict[int, dict[str, float]]:
    return {p: ema_grid_scores(run, cfg, scorer, p)
            for p in tqdm(cfg.points, desc=f"EMA* grid {run.name}", disable=not progress, leave=False)}


class _RowScorer:
    """Held-out scores of named states, computed once per (candidate, point, NFE)."""

    def __init__(self, run: ModelRun, cfg: DemoConfig, scorer: Scorer, bar) -> None:
        self.run, self.cfg, self.scorer, self.bar = run, cfg, scorer, bar
        self.cache: dict[tuple, HeldOutScore] = {}

    def __call__(self, key: str, point: int, state_fn, nfe: int, full: bool) -> HeldOutScore:
        for k in ((key, point, nfe, True), (key, point, nfe, full)):
            if k in self.cache:
                return self.cache[k]
        self.cache[(key, point, nfe, full)] = held_out_row(self.run, self.cfg, self.scorer, state_fn(), nfe, full)
        self.bar.update(1)
        return self.cache[(key, point, nfe, full)]


def _rows(cfg: DemoConfig, scorer: Scorer, runs, ema_star, searches, progress: bool = False, window=None):
    rows: list[DemoRow] = []
    matches: dict[str, dict[str, Any]] = {}
    with tqdm(desc="held-out rows", disable=not progress, leave=False) as bar:
        for name, run in runs.items():
            score = _RowScorer(run, cfg, scorer, bar)
            rows += _curve_rows(cfg, run, score, ema_star[name], searches[name])
            matches[name] = _nfe_rows(cfg, run, score, ema_star[name][cfg.iterations],
                                      searches[name][cfg.iterations], rows)
            if cfg.anchored:
                rows += _anchoring_rows(cfg, run, score, searches[name][cfg.iterations], (window or {}).get(name))
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
                searches: dict[int, SearchRun]) -> list[DemoRow]:
    """EMA* at every curve point, the fixed EMA at the main table's points (it is no baseline to beat: EMA* is), LCSC
    at its points with the training-cost speed-up of the early one."""
    label, default, rows = MODEL_LABELS[run.name], ema_name(half_life=cfg.default_half_life), []
    for method, names, main_points in (("EMA", {p: default for p in cfg.ema_points}, cfg.ema_points),
                                       ("EMA*", ema_star, cfg.lcsc_points)):
        for p in names:
            main = p in main_points
            state = score(names[p], p, lambda p=p, n=names[p]: ema_state_named(run, n, p), run.nfe, main)
            rows.append(DemoRow(label, method, p, run.nfe, state, detail=names[p], main=main))
    curve = [r.score.__dict__ for r in rows if r.method == "EMA*"]
    for p, search in searches.items():
        row = DemoRow(label, "LCSC", p, run.nfe, score("lcsc", p, lambda s=search: lcsc_state(s), run.nfe, True),
                      detail=_lcsc_detail(search),
                      initial=score("initial", p, lambda s=search: lcsc_state(s, initial=True), run.nfe, False))
        if p < cfg.iterations:
            core_s_per_iter = run.train_s * run.threads / cfg.iterations  # the search's cores ÷ training's
            row.headline = speedup(list(cfg.points), curve, row.score.__dict__, p,
                                   search.seconds * torch.get_num_threads() / core_s_per_iter)
        rows.append(row)
    return rows


def _lcsc_detail(search: SearchRun) -> str:
    """K (window + anchors), evaluations, and what the validation guard exported."""
    m, res = search.merger, search.result
    anchors = len(getattr(m, "anchors", []) or [])
    text = f"K={m.K}" + (f" ({m.K - anchors} + {anchors} anchors)" if anchors else "") + f", {res.evaluations} evals"
    reval = res.revalidation or {}
    if reval.get("exported_anchor"):
        text += f"; guard exported the anchor {res.best_name.removeprefix('anchor ')}"
    elif reval:
        text += f"; guard exported #{res.best_index}"
    return text


def _nfe_rows(cfg: DemoConfig, run: ModelRun, score: _RowScorer, star: str, search: SearchRun,
              rows: list[DemoRow]) -> dict[str, Any]:
    """EMA* and LCSC at the end of training at every NFE of the model's list; where EMA* matches LCSC's NFE."""
    label, final, nfes = MODEL_LABELS[run.name], cfg.iterations, list(cfg.dm_nfes if run.name == "dm" else cfg.cm_nfes)
    curve = []
    for n in nfes:
        for method, key, fn in (("EMA*", star, lambda: ema_state_named(run, star, final)),
                                ("LCSC", "lcsc", lambda: lcsc_state(search))):
            s = score(key, final, fn, n, n == run.nfe)
            if n != run.nfe:
                rows.append(DemoRow(label, method, final, n, s, detail=star if method == "EMA*" else "searched at "
                                    f"NFE {run.nfe}", main=False))
            if method == "EMA*":
                curve.append(s.__dict__)
    lcsc = next(r for r in rows if r.model == label and r.method == "LCSC" and r.iteration == final and r.main)
    return nfe_match(nfes, curve, lcsc.score.__dict__, run.nfe)


def _inception_seconds(cfg: DemoConfig, scorer: Scorer) -> float:
    """Inception FID of every main-table row: one timed batch of 8, extrapolated (0 without ``--inception``)."""
    if scorer.inception is None:
        return 0.0
    x = torch.rand(8, *scorer.image_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scorer.inception(x)  # warm-up
    t0 = time.perf_counter()
    scorer.inception(x)
    rows = 7 * (3 if cfg.cd else 2)
    return (time.perf_counter() - t0) / 8 * cfg.inception_samples * rows


def _timed(fn, repeat: int = 3, best: bool = False) -> float:
    """Mean (or, with ``best``, minimum) seconds of ``repeat`` calls after a warm-up."""
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) if best else sum(times) / repeat


_EVAL_OVERHEAD_S = 0.05  # per search evaluation: merge, bookkeeping, journal (measured on 2 CPU cores)
_CANDIDATE_OVERHEAD_S = 0.03  # per EMA* candidate: reconstruction or snapshot load
_ROW_OVERHEAD_S = 0.25  # per held-out row: model and state loading, three evaluations' bookkeeping
_PAIR_FACTOR = 1.15  # the pair training side by side vs steps timed alone (spawn, logging, contention)


def unit_costs(kind: str, cfg: DemoConfig, scorer: Scorer, data) -> dict[str, float]:
    """Seconds per training step, per sample per NFE, per sample for FD in the searched spaces / all three spaces,
    and for one KID + precision/recall at the held-out sample count."""
    from lcsc.generate import generate
    from lcsc.metrics import evaluate_images
    from lcsc.training import RecordConfig, TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(model=ModelConfig(kind=kind, channels=cfg.channels), iterations=64,
                         batch_size=cfg.batch_size, record=RecordConfig(window=1, interval=1), device=cfg.device,
                         ema_half_lives=cfg.half_lives)
        trainer = Trainer(tc, tmp, data=data, progress=False, resume=False)
        steps = iter(range(1, 64))
        step_s = _timed(lambda: trainer.train_step(next(steps)), 4)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what each model gets when the pair trains side by side
        try:
            step1_s = _timed(lambda: trainer.train_step(next(steps)), 4)
        finally:
            torch.set_num_threads(threads)
    model = build_model(ModelConfig(kind=kind, channels=cfg.channels)).to(cfg.device)
    n, nfe = min(cfg.eval_samples, 1000), (cfg.dm_nfe if kind == "dm" else cfg.cm_nfe)
    gen_s = _timed(lambda: generate(model, n, 0, nfe=nfe, device=cfg.device), 1) / (n * nfe)
    images = generate(model, n, 0, nfe=nfe, device=cfg.device)
    fd = [_timed(lambda sp=sp, ref=ref: evaluate_images(images, ref, sp, ("fd",)), 1) / n
          for sp, ref in ((scorer.digits, scorer.ref), (scorer.digits2, scorer.ref2), (scorer.digits3, scorer.ref3))]
    kidpr_s = _timed(lambda: evaluate_images(images, scorer.ref, scorer.digits, ("kid", "pr"),
                                             kid_subsets=cfg.kid_subsets), 1) * cfg.eval_samples / n
    searched = 2 if ":" in cfg.search_objective else 1
    return {"step": step_s, "step1": step1_s, "gen": gen_s, "fd_search": sum(fd[:searched]), "fd_all": sum(fd), "kidpr": kidpr_s}


def _model_seconds(name: str, cfg: DemoConfig, c: dict[str, float]) -> dict[str, float]:
    """Planned work of one model × measured unit costs, per stage."""
    dm = name == "dm"
    nfe, nfes, evals = (cfg.dm_nfe, cfg.dm_nfes, cfg.dm_search_evals) if dm else \
        (cfg.cm_nfe, cfg.cm_nfes, cfg.cm_search_evals)

    def sample(n: int, fd: float, fe: int = nfe) -> float:
        return n * (c["gen"] * fe + fd)

    candidates = len(cfg.points) * (len(cfg.half_lives) + len(cfg.sigma_rels))
    grid = candidates * (sample(min(cfg.grid_samples, cfg.search_samples), c["fd_search"]) + _CANDIDATE_OVERHEAD_S)
    if cfg.grid_samples < cfg.search_samples:
        grid += len(cfg.points) * cfg.grid_finalists * sample(cfg.search_samples, c["fd_search"])
    per_search = evals * (sample(cfg.search_samples, c["fd_search"]) + _EVAL_OVERHEAD_S)
    search = len(cfg.lcsc_points) * per_search
    rows = len(cfg.ema_points) + len(cfg.points) + 2 * len(cfg.lcsc_points)
    parts = {}
    if cfg.anchored:  # the guard's validation scores; the window-only baseline; its rows and the shrunk ones
        search += len(cfg.lcsc_points) * (cfg.guard_finalists + 1) * sample(cfg.search_samples, c["fd_search"])
        if cfg.window_only_baseline:
            parts[f"LCSC {name} window only"] = per_search
        rows += len(cfg.shrink_lambdas) + int(cfg.window_only_baseline)
    held = rows * cfg.eval_seeds * sample(cfg.eval_samples, c["fd_all"]) + 7 * cfg.eval_seeds * c["kidpr"]
    held += 2 * cfg.eval_seeds * sum(sample(cfg.eval_samples, c["fd_all"], n) for n in nfes if n != nfe)
    held += (rows + 2 * (len(nfes) - 1)) * _ROW_OVERHEAD_S
    return {f"train {name}": cfg.iterations * c["step"] * 1.08, f"EMA* grid {name}": grid,
            f"LCSC {name}": search, **parts, f"held-out {name}": held}


def estimate_parts(cfg: DemoConfig, scorer: Scorer, data=None) -> dict[str, float]:
    """Seconds per stage of everything after the feature spaces: measured unit costs (a few training steps, a timed
    generation and feature pass per model kind) times the planned work, plus the Inception FIDs with ``--inception``."""
    data = load_digits_data() if data is None else data
    rounds = [{kind: unit_costs(kind, cfg, scorer, data) for kind in ("dm", "cm")} for _ in range(2)]
    # the first timings of a fresh process run up to 1.7× slow (allocator, thread pools): the faster of two rounds
    costs = {kind: {k: min(r[kind][k] for r in rounds) for k in rounds[0][kind]} for kind in ("dm", "cm")}
    parts: dict[str, float] = {}
    for name in ["dm", "cm-ct"] + (["cm-cd"] if cfg.cd else []):
        parts |= _model_seconds(name, cfg, costs["dm" if name == "dm" else "cm"])
    if cfg.cd:  # CD's loss runs the DM teacher: a step costs about a DM step more
        parts["train cm-cd"] += cfg.iterations * costs["dm"]["step"]
    if parallel_training(cfg):
        del parts["train dm"], parts["train cm-ct"]
        parts["train dm ‖ cm-ct"] = _pair_seconds(cfg.iterations, costs["dm"], costs["cm"]) * _PAIR_FACTOR
    parts["inception"] = _inception_seconds(cfg, scorer)
    parts["figures and report"] = 8.0
    return {k: round(v, 1) for k, v in parts.items()}


def _pair_seconds(iterations: int, a: dict[str, float], b: dict[str, float]) -> float:
    """Both on one thread from start to end (:func:`train_pair`): the slower one's time."""
    return iterations * max(a["step1"], b["step1"])
