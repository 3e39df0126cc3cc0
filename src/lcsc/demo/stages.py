"""The demo's stages: train with the recorder, choose EMA* on search noise, run LCSC, score rows on held-out noise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from lcsc.checkpoints import CheckpointStack
from lcsc.data import ImageData
from lcsc.demo.config import DemoConfig
from lcsc.demo.scoring import HeldOutScore, Scorer
from lcsc.merge import StackMerger
from lcsc.models import ModelConfig, load_model
from lcsc.search import SearchResult, run_search
from lcsc.training import ConsistencyConfig, OptimConfig, RecordConfig, TrainConfig, Trainer
from lcsc.training.ema import ema_name
from lcsc.training.log import read_log

__all__ = ["ModelRun", "SearchRun", "train_model", "ema_grid_scores", "lcsc_search", "train_seconds_at"]


@dataclass
class ModelRun:
    """One trained model of the demo: its folder, kind label, NFE and the time training took."""

    name: str
    run_dir: Path
    nfe: int
    train_s: float
    ema_scores: dict[int, dict[str, float]] = field(default_factory=dict)  # point → EMA name → search-noise FD


@dataclass
class SearchRun:
    point: int
    result: SearchResult
    merger: StackMerger
    seconds: float


def train_model(name: str, cfg: DemoConfig, out: Path, data: ImageData, teacher: Path | None = None,
                progress: bool = True) -> ModelRun:
    """Train the DM ("dm"), the CT CM ("cm-ct") or the CD CM ("cm-cd") with the recorder and the EMA grid."""
    kind = "dm" if name == "dm" else "cm"
    consistency = ConsistencyConfig(mode="cd", teacher=str(teacher)) if name == "cm-cd" else None
    config = TrainConfig(
        model=ModelConfig(kind=kind, channels=cfg.channels), iterations=cfg.iterations, batch_size=cfg.batch_size,
        seed=cfg.seed + {"dm": 0, "cm-ct": 1, "cm-cd": 2}[name],
        optim=OptimConfig(lr=cfg.dm_lr if kind == "dm" else cfg.cm_lr),
        record=RecordConfig(window=cfg.window, interval=cfg.interval, ends=(cfg.early_point, cfg.iterations),
                            ema_steps=cfg.ema_points),
        ema_half_lives=cfg.half_lives, consistency=consistency, device=cfg.device, log_every=cfg.interval,
        sample_nfe=cfg.dm_nfe if kind == "dm" else cfg.cm_nfe)
    trainer = Trainer(config, out / name, data=data, progress=progress)
    trainer.run()
    return ModelRun(name, out / name, cfg.dm_nfe if kind == "dm" else cfg.cm_nfe, train_seconds_at(out / name))


def train_seconds_at(run_dir: Path, step: int | None = None) -> float:
    """Training wall time up to ``step`` (default: the end) from the loss log, summed over resumed segments."""
    total, last = 0.0, 0.0
    for rec in read_log(run_dir / "log.jsonl"):
        if step is not None and rec["step"] > step:
            break
        if rec["elapsed_s"] < last:  # a resumed segment restarts its clock
            total += last
        last = rec["elapsed_s"]
    return total + last


def ema_state(run: ModelRun, half_life: float, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run.run_dir / "ema" / ema_name(half_life=half_life) / f"ema-{step:09d}.safetensors"))


def ema_grid_scores(run: ModelRun, cfg: DemoConfig, scorer: Scorer, point: int) -> dict[str, float]:
    """Search-noise FD_digits of every online EMA at ``point`` (EMA* = the lowest; paper Table 10)."""
    model = load_model(run.run_dir / "last.safetensors", cfg.device)
    objective = scorer.objective(model, run.nfe)
    scores = {ema_name(half_life=h): objective.score(ema_state(run, h, point)) for h in cfg.half_lives}
    run.ema_scores[point] = scores
    return scores


def lcsc_search(run: ModelRun, cfg: DemoConfig, scorer: Scorer, point: int, evals: int, out: Path,
                progress: bool = True) -> SearchRun:
    """LCSC (``cfg.search_*``: Algorithm 1 by default) on the window ending at ``point`` against the search objective
    on the search noise (resumable)."""
    stack = CheckpointStack.open(run.run_dir / "windows" / str(point), progress=False)
    merger = StackMerger(stack, device=cfg.device)
    objective = scorer.search_objective(load_model(stack.paths[-1], cfg.device), run.nfe)
    search_dir = out / "search" / f"{run.name}-{point}"
    resume = (search_dir / "journal.jsonl").is_file()
    result = run_search(merger, objective, cfg.search_config(evals), search_dir, resume=resume, progress=progress)
    return SearchRun(point, result, merger, float(result.wall_time_s))


def lcsc_state(search: SearchRun, initial: bool = False) -> dict[str, torch.Tensor]:
    """The search's best merge (or, with ``initial``, its best initial individual)."""
    a = search.result.best_initial if initial else search.result.best
    return search.merger.merge_many(np.asarray(a)[None])[0]


def held_out_row(run: ModelRun, cfg: DemoConfig, scorer: Scorer, state: dict[str, torch.Tensor]) -> HeldOutScore:
    model = load_model(run.run_dir / "last.safetensors", cfg.device)
    return scorer.held_out(model, state, run.nfe)
