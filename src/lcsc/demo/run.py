"""``run_demo``: the LCSC paper's headline on the embedded digits — DM and CM, EMA / EMA* / LCSC, held-out noise."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lcsc.data import load_digits_data
from lcsc.demo.config import DemoConfig
from lcsc.demo.scoring import HeldOutScore, Scorer
from lcsc.demo.stages import (
    ModelRun,
    SearchRun,
    ema_grid_scores,
    ema_state,
    held_out_row,
    lcsc_search,
    lcsc_state,
    train_model,
    train_seconds_at,
)
from lcsc.models import ModelConfig, build_model
from lcsc.training.ema import ema_name

__all__ = ["DemoRow", "DemoResult", "run_demo", "MODEL_LABELS"]

MODEL_LABELS = {"dm": "DM", "cm-ct": "CM (CT)", "cm-cd": "CM (CD)"}


@dataclass
class DemoRow:
    model: str
    method: str
    iteration: int
    nfe: int
    score: HeldOutScore
    speedup: float | None = None
    detail: str = ""
    initial: HeldOutScore | None = None  # LCSC rows: the search's best initial individual, scored the same way

    def to_dict(self) -> dict[str, Any]:
        s = self.score
        return {"model": self.model, "method": self.method, "iteration": self.iteration, "nfe": self.nfe,
                "fd_mean": s.fd_mean, "fd_std": s.fd_std, "fd2_mean": s.fd2_mean, "fd2_std": s.fd2_std,
                "kid": s.kid, "precision": s.precision, "recall": s.recall, "speedup": self.speedup,
                "fid": s.fid, "detail": self.detail, "fd_per_seed": list(s.fd_per_seed), "fd3_mean": s.fd3_mean,
                "fd3_std": s.fd3_std, "initial": None if self.initial is None else
                {"fd_mean": self.initial.fd_mean, "fd2_mean": self.initial.fd2_mean,
                 "fd3_mean": self.initial.fd3_mean}}


@dataclass
class DemoResult:
    config: DemoConfig
    out: Path
    rows: list[DemoRow]
    runs: dict[str, ModelRun]
    searches: dict[str, dict[int, SearchRun]]
    ema_star: dict[str, dict[int, str]]
    stages: dict[str, float] = field(default_factory=dict)
    estimate_s: float = 0.0


class _Clock:
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
    out, clock = Path(out), _Clock(on_stage)
    data = load_digits_data()
    scorer = clock.run("feature spaces and references", Scorer, cfg, data, progress)
    estimate = clock.stages["feature spaces and references"] + clock.run("estimate", estimate_seconds, cfg, scorer)
    if on_stage:
        on_stage("estimate", {"seconds": estimate})
    names = ["dm", "cm-ct"] + (["cm-cd"] if cfg.cd else [])
    runs: dict[str, ModelRun] = {}
    for name in names:
        teacher = runs["dm"].run_dir / "ema" / ema_name(half_life=cfg.default_half_life) / \
            f"ema-{cfg.iterations:09d}.safetensors" if name == "cm-cd" else None
        runs[name] = clock.run(f"train {name}", train_model, name, cfg, out, data, teacher, progress)
    ema_star, searches = {}, {}
    for name, run in runs.items():
        ema_star[name] = {p: _best(clock.run(f"EMA grid {name}@{p}", ema_grid_scores, run, cfg, scorer, p))
                          for p in (cfg.early_point, cfg.iterations)}
        evals = cfg.dm_search_evals if name == "dm" else cfg.cm_search_evals
        searches[name] = {p: clock.run(f"LCSC {name}@{p}", lcsc_search, run, cfg, scorer, p, evals, out, progress)
                          for p in (cfg.early_point, cfg.iterations)}
    rows = clock.run("held-out evaluation", _rows, cfg, scorer, runs, ema_star, searches)
    for name, run in runs.items():  # a resumed stage reports the time it took when it ran, not the reuse
        clock.stages[f"train {name}"] = round(max(clock.stages[f"train {name}"], run.train_s), 2)
        for p, search in searches[name].items():
            clock.stages[f"LCSC {name}@{p}"] = round(max(clock.stages[f"LCSC {name}@{p}"], search.seconds), 2)
    return DemoResult(cfg, out, rows, runs, searches, ema_star, clock.stages, estimate)


def _best(scores: dict[str, float]) -> str:
    return min(scores, key=scores.get)


def _rows(cfg: DemoConfig, scorer: Scorer, runs, ema_star, searches) -> list[DemoRow]:
    rows: list[DemoRow] = []
    default = ema_name(half_life=cfg.default_half_life)
    for name, run in runs.items():
        label = MODEL_LABELS[name]
        for p in cfg.ema_points:
            score = held_out_row(run, cfg, scorer, ema_state(run, cfg.default_half_life, p))
            rows.append(DemoRow(label, "EMA", p, run.nfe, score, detail=default))
        for p in (cfg.early_point, cfg.iterations):
            star = ema_star[name][p]
            hl = float(star.removeprefix("hl-"))
            rows.append(DemoRow(label, "EMA*", p, run.nfe, held_out_row(run, cfg, scorer, ema_state(run, hl, p)),
                                detail=star))
        full_star = rows[-1].score.fd_mean
        for p, search in searches[name].items():
            score = held_out_row(run, cfg, scorer, lcsc_state(search))
            initial = held_out_row(run, cfg, scorer, lcsc_state(search, initial=True))
            speedup = None
            if p < cfg.iterations and score.fd_mean <= full_star:
                speedup = run.train_s / (train_seconds_at(run.run_dir, p) + search.seconds)
            rows.append(DemoRow(label, "LCSC", p, run.nfe, score, speedup,
                                detail=f"K={search.merger.K}, {search.result.evaluations} evals", initial=initial))
    return rows


def _inception_seconds(cfg: DemoConfig, scorer: Scorer) -> float:
    """Inception FID of every held-out row: one timed batch of 8, extrapolated (0 without ``--inception``)."""
    if scorer.inception is None:
        return 0.0
    x = torch.rand(8, *scorer.image_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scorer.inception(x)  # warm-up
    t0 = time.perf_counter()
    scorer.inception(x)
    rows = 7 * (3 if cfg.cd else 2)
    return (time.perf_counter() - t0) / 8 * cfg.inception_samples * rows


def estimate_seconds(cfg: DemoConfig, scorer: Scorer) -> float:
    """Wall time of everything after the feature spaces: a few timed training steps and one timed search evaluation
    per model, plus the Inception FIDs with ``--inception``."""
    from lcsc.data import load_digits_data
    from lcsc.training import RecordConfig, TrainConfig, Trainer

    total = 0.0
    data = load_digits_data()
    for kind, nfe, evals in (("dm", cfg.dm_nfe, cfg.dm_search_evals), ("cm", cfg.cm_nfe, cfg.cm_search_evals)):
        with tempfile.TemporaryDirectory() as tmp:
            tc = TrainConfig(model=ModelConfig(kind=kind, channels=cfg.channels), iterations=10,
                             batch_size=cfg.batch_size, record=RecordConfig(window=1, interval=1), device=cfg.device)
            trainer = Trainer(tc, tmp, data=data, progress=False, resume=False)
            trainer.train_step(1)
            t0 = time.perf_counter()
            for step in range(2, 6):
                trainer.train_step(step)
            it_s = (time.perf_counter() - t0) / 4 * 1.15  # EMA updates, recording, logging
        model = build_model(ModelConfig(kind=kind, channels=cfg.channels))
        objective = scorer.objective(model, nfe)
        t0 = time.perf_counter()
        objective.score(model.state_dict())
        eval_s = time.perf_counter() - t0
        iterations = cfg.iterations + (cfg.cd_iterations if (kind == "cm" and cfg.cd) else 0)
        runs = 2 if (kind == "cm" and cfg.cd) else 1
        rows_evals = 9 * cfg.eval_seeds * cfg.eval_samples / cfg.search_samples
        total += iterations * it_s + runs * (2 * evals + 2 * len(cfg.half_lives) + rows_evals) * eval_s
    return total + _inception_seconds(cfg, scorer)
