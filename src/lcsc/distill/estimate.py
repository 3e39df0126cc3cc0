"""The distillation benchmark's time estimate per stage: measured unit costs × the planned work (printed up front)."""

from __future__ import annotations

from lcsc.distill.config import DistillConfig, RunSpec
from lcsc.distill.costs import TRAIN_PASSES
from lcsc.experiment.scoring import Scorer
from lcsc.experiment.unit_costs import unit_costs

__all__ = ["estimate_stages", "lane_schedule"]

_TEACHER_PASS = 1 / 3  # one teacher forward ≈ a third of a DM training step (forward + backward)
_OVERHEAD = 1.15  # recording, EMA updates, logging, process start-up


def lane_schedule(durations: dict[str, float], lanes: int) -> float:
    """Wall time of training the runs in ``durations`` order on ``lanes`` lanes, greedily (each on the first free
    lane)."""
    free = [0.0] * lanes
    for seconds in durations.values():
        lane = min(range(lanes), key=free.__getitem__)
        free[lane] += seconds
    return max(free, default=0.0)


def _step_seconds(spec: RunSpec, costs: dict[str, dict[str, float]], batch: int, key: str = "step1") -> float:
    """One training step (``key``: "step1" on one thread, "step" on all), scaled from the timed batch to the run's
    (linear in the batch)."""
    dm, cm = costs["dm"][key], costs["cm"][key]
    step = dm if spec.model == "dm" else cm + (2 * _TEACHER_PASS * dm if spec.model == "cm-cd" else 0.0)
    return step * spec.batch_size / batch


def _eval_seconds(spec: RunSpec, c: dict[str, float]) -> dict[str, float]:
    d = spec.demo
    nfe = d.dm_nfe if spec.model == "dm" else d.cm_nfe
    per = c["gen"] * nfe
    candidates = len(d.half_lives) + len(d.sigma_rels)
    grid = len(d.points) * (candidates * d.grid_samples + d.grid_finalists * d.search_samples) * (per + c["fd_search"])
    if d.export == "gradient":  # the initial population, 4 forward-pass equivalents per gradient sample, the guard
        init = 1 + 2 * len(d.anchor_half_lives) + d.search_config(1).init_count
        evals = init + 3 + 4 * d.grad_steps * d.grad_batch_size / d.search_samples
    else:
        evals = d.search_evals(spec.model) + d.guard_finalists + 1
    search = len(d.lcsc_points) * evals * d.search_samples * (per + c["fd_search"] + 0.05 / d.search_samples)
    nfes = d.dm_nfes if spec.model == "dm" else d.cm_nfes
    rows = (2 * len(d.points) + 2 * len(d.lcsc_points)) * d.eval_seeds * d.eval_samples * (per + c["fd_all"])
    if spec.name in ("teacher", "cd"):
        rows += 2 * d.eval_seeds * d.eval_samples * sum(c["gen"] * n + c["fd_all"] for n in nfes)
    return {"grid": grid, "search": search, "rows": rows}


def estimate_stages(cfg: DistillConfig, scorer: Scorer, data, lanes: int) -> dict[str, float]:
    """Seconds per stage: training (the lane schedule), EMA* grids, LCSC searches, held-out rows."""
    ref = cfg.runs()["cd"].demo
    costs = {kind: unit_costs(kind, ref, scorer, data) for kind in ("dm", "cm")}
    specs = cfg.runs()
    teacher = specs["teacher"]  # alone first, on every lane's core (lcsc.distill.train.train_runs)
    key = "step" if lanes > 1 else "step1"
    first = teacher.iterations * _step_seconds(teacher, costs, ref.batch_size, key) * _OVERHEAD
    rest = sorted((s for s in specs.values() if s.name != "teacher"),
                  key=lambda s: -s.iterations * TRAIN_PASSES[s.model] * s.batch_size)
    train = {s.name: s.iterations * _step_seconds(s, costs, ref.batch_size) * _OVERHEAD for s in rest}
    out = {"training": first + lane_schedule(train, lanes)}
    parts = {n: _eval_seconds(s, costs["dm" if s.model == "dm" else "cm"]) for n, s in specs.items()}
    for key, label in (("grid", "EMA* grids"), ("search", "LCSC searches"), ("rows", "held-out rows")):
        out[label] = sum(p[key] for p in parts.values())
    return {k: round(v, 1) for k, v in out.items()}
