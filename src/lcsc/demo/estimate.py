"""The demo's time estimate: measured unit costs (a few training steps, a timed generation and feature pass per model
kind: :func:`lcsc.experiment.unit_costs.unit_costs`) times the planned work of every stage."""

from __future__ import annotations

import time

import torch

from lcsc.data import load_digits_data
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.scoring import Scorer
from lcsc.experiment.stages import parallel_training
from lcsc.experiment.unit_costs import unit_costs

__all__ = ["estimate_parts"]


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


_EVAL_OVERHEAD_S = 0.05  # per search evaluation: merge, bookkeeping, journal (measured on 2 CPU cores)
_CANDIDATE_OVERHEAD_S = 0.03  # per EMA* candidate: reconstruction or snapshot load
_ROW_OVERHEAD_S = 0.25  # per held-out row: model and state loading, three evaluations' bookkeeping
_PAIR_FACTOR = 1.15  # the pair training side by side vs steps timed alone (spawn, logging, contention)
_GRAD_FACTOR = 4.0  # a sample with autograd and recomputation vs one without (DM ≈ 3.7×, CM ≈ 4.3×: issue 33's runs)


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
    rows = len(cfg.ema_points) + len(cfg.points) + (3 if cfg.gradient else 2) * len(cfg.lcsc_points)
    parts = {}
    if cfg.anchored:  # the guard's validation scores; the window-only baseline; its rows and the shrunk ones
        search += len(cfg.lcsc_points) * (cfg.guard_finalists + 1) * sample(cfg.search_samples, c["fd_search"])
        if cfg.window_only_baseline:
            parts[f"LCSC {name} window only"] = per_search
        rows += len(cfg.shrink_lambdas) + int(cfg.window_only_baseline)
    low = cfg.dm_low_nfe if dm and cfg.gradient else 0
    if cfg.gradient:
        parts[f"LCSC gradient {name}"] = _grad_seconds(cfg, sample, c["fd_search"], nfe, low)
    held = rows * cfg.eval_seeds * sample(cfg.eval_samples, c["fd_all"]) + 7 * cfg.eval_seeds * c["kidpr"]
    others = [n for n in nfes if n != nfe] + ([low] if low else [])  # EMA* at every other NFE, LCSC at the low one
    held += cfg.eval_seeds * sum(sample(cfg.eval_samples, c["fd_all"], n) for n in others)
    held += (rows + len(others)) * _ROW_OVERHEAD_S
    return {f"train {name}": cfg.iterations * c["step"] * 1.08, f"EMA* grid {name}": grid,
            f"LCSC {name}": search, **parts, f"held-out {name}": held}


def _grad_seconds(cfg: DemoConfig, sample, fd: float, nfe: int, low: int) -> float:
    """The gradient searches: steps × batch with a backward pass (≈ :data:`_GRAD_FACTOR` no-grad samples each) and
    the guard's 3 finalists at every window end; at the low NFE also the initial population (shared at ``nfe``)."""
    init = 1 + 2 * len(cfg.anchor_half_lives) + cfg.search_config(1).init_count

    def one(fe: int, with_init: bool) -> float:
        steps = cfg.grad_steps * cfg.grad_batch_size * _GRAD_FACTOR * sample(1, fd, fe)
        return steps + (3 + (init if with_init else 0)) * sample(cfg.search_samples, fd, fe)

    return len(cfg.lcsc_points) * one(nfe, False) + (one(low, True) if low else 0.0)


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
