# The LCSC paper's CD / CT training-cost experiment (Liu et al. 2024, Sec. 5.1–5.2, Tabs. 1, 6, 7) at digits scale.
"""``run_distillation``: train the teacher, CD and CT runs; EMA* and anchored LCSC on every window; held-out rows.

Every stage resumes after a kill: training from its saved state, EMA* grids and held-out rows from per-run caches
written after each point or row, searches from their journals; finished stages are skipped. The analysis of the
rows (speed-ups, NFE, costs) is :mod:`lcsc.distill.analysis`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lcsc.atomic import read_json_object, write_json
from lcsc.data import load_digits_data
from lcsc.distill.config import DistillConfig, RunSpec
from lcsc.distill.estimate import estimate_stages
from lcsc.distill.train import lanes, run_of, teacher_path, train_runs, write_teacher
from lcsc.errors import ConfigError
from lcsc.experiment.clock import StageClock
from lcsc.experiment.scoring import Scorer
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
)
from lcsc.training.ema import ema_name

__all__ = ["run_distillation", "check_out_folder", "CONFIG_FILE"]

CONFIG_FILE = "distill_config.json"


def check_out_folder(cfg: DistillConfig, out: Path) -> None:
    """Refuse a folder holding another configuration's run (naming the differing keys); record ours otherwise."""
    path = out / CONFIG_FILE
    want = cfg.to_dict()
    if path.is_file():
        have = read_json_object(path, "a distillation benchmark configuration")
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != _jsonable(want.get(k)))
        if diff:
            raise ConfigError(f"{out} holds another configuration's run (differs in {', '.join(diff)}); use another "
                              "--out or the same settings")
        return
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no {CONFIG_FILE}: not a distillation benchmark folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, want)


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


class _Cache:
    """A JSON object on disk, rewritten atomically after every entry (a kill loses at most the entry in progress)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = read_json_object(path, "a benchmark cache") if path.is_file() else {}

    def get(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self.data:
            self.data[key] = fn()
            write_json(self.path, self.data)
        return self.data[key]


def _grid(spec: RunSpec, run: ModelRun, out: Path, scorer: Scorer, points, progress: bool) -> dict[int, dict]:
    """EMA* at ``points`` of a run (search noise), cached per point: the grid scores, finalists, EMA*, interior."""
    cache, res = _Cache(out / spec.name / "ema_star.json"), {}
    for p in tqdm(points, desc=f"EMA* grid {spec.name}", disable=not progress, leave=False):
        def compute(p=p):
            ema_grid_scores(run, spec.demo, scorer, p)
            star, interior = ema_star_choice(spec.demo, run.ema_finalists[p])
            return {"scores": run.ema_scores[p], "finalists": run.ema_finalists[p], "star": star, "interior": interior}
        res[p] = cache.get(str(p), compute)
    return res


def _teacher_maker(cfg: DistillConfig, out: Path, scorer: Scorer) -> Callable[[], Path]:
    spec = cfg.runs()["teacher"]

    def make() -> Path:
        if teacher_path(out).is_file():
            return teacher_path(out)
        run = run_of(out, spec)
        star = _grid(spec, run, out, scorer, (spec.iterations,), False)[spec.iterations]["star"]
        return write_teacher(out, spec, ema_state_named(run, star, spec.iterations), star)
    return make


def _searches(spec: RunSpec, run: ModelRun, out: Path, scorer: Scorer, grid, progress: bool) -> dict[int, SearchRun]:
    """Anchored LCSC at every window end: the gradient search (``search="gradient"``) or Algorithm 1."""
    if spec.demo.export == "gradient":
        return {p: lcsc_grad_search(run, spec.demo, scorer, p, out / spec.name, progress, grid[p]["star"])
                for p in spec.demo.lcsc_points}
    evals = spec.demo.search_evals(spec.model)
    return {p: lcsc_search(run, spec.demo, scorer, p, evals, out / spec.name, progress, grid[p]["star"])
            for p in spec.demo.lcsc_points}


def _row(scorer: Scorer, run: ModelRun, spec: RunSpec, state_fn, nfe: int) -> dict[str, Any]:
    s = held_out_row(run, spec.demo, scorer, state_fn(), nfe, full=False)
    return {"fd_mean": s.fd_mean, "fd2_mean": s.fd2_mean, "fd3_mean": s.fd3_mean, "fd4_mean": s.fd4_mean,
            "fd_std": s.fd_std, "fd_per_seed": list(s.fd_per_seed)}


def _rows(spec: RunSpec, run: ModelRun, out: Path, scorer: Scorer, grid, searches, bar) -> list[dict[str, Any]]:
    """Held-out rows of a run, cached one by one: EMA (the default half-life) and EMA* at every point, LCSC (and its
    best initial individual) at every window end; at the end, EMA* and LCSC at every NFE of the model's list."""
    cache, d, rows = _Cache(out / spec.name / "rows.json"), spec.demo, []
    default = ema_name(half_life=d.default_half_life)

    def add(method: str, p: int, detail: str, nfe: int, fn) -> None:
        key = f"{method}|{p}|{nfe}|{detail}"
        hit = key in cache.data
        rows.append({"run": spec.name, "method": method, "iteration": p, "nfe": nfe, "detail": detail,
                     **cache.get(key, lambda: _row(scorer, run, spec, fn, nfe))})
        bar.update(0 if hit else 1)

    for p in d.points:
        add("EMA", p, default, run.nfe, lambda p=p: ema_state_named(run, default, p))
        add("EMA*", p, grid[p]["star"], run.nfe, lambda p=p: ema_state_named(run, grid[p]["star"], p))
    for p, s in searches.items():
        budget = f"{s.result.gradient['steps_done']} gradient steps" if s.result.gradient else \
            f"{s.result.evaluations} evals"
        add("LCSC", p, f"K={s.merger.K}, {budget}", run.nfe, lambda s=s: lcsc_state(s))
        add("LCSC initial", p, s.result.best_initial_name or "", run.nfe, lambda s=s: lcsc_state(s, initial=True))
    end, nfes = d.iterations, (d.dm_nfes if spec.model == "dm" else d.cm_nfes)
    if spec.name in ("teacher", "cd"):
        for n in nfes:
            add("EMA*", end, grid[end]["star"], n, lambda: ema_state_named(run, grid[end]["star"], end))
            add("LCSC", end, f"searched at NFE {run.nfe}", n, lambda: lcsc_state(searches[end]))
    return rows


def _search_record(s: SearchRun) -> dict[str, Any]:
    """A search's cost: "samples" in forward-pass equivalents (a gradient sample is 4: the forward, its recomputation
    in the backward pass, and the backward counted as two forwards, as training steps are counted)."""
    r = s.result
    grad = r.gradient["samples"] if r.gradient else 0
    return {"point": s.point, "seconds": s.seconds, "evaluations": r.evaluations, "samples": r.samples + 3 * grad,
            "K": s.merger.K, "revalidation": bool(r.revalidation)}


def _estimate(cfg: DistillConfig, scorer: Scorer, data, out: Path) -> dict[str, float]:
    """The whole run's estimate, timed once when the run starts (``estimate.json``); a resumed run shows it again
    instead of re-timing the machine at every restart."""
    path = out / "estimate.json"
    if path.is_file():
        return {k: float(v) for k, v in read_json_object(path, "the run's time estimate").items()}
    parts = estimate_stages(cfg, scorer, data, lanes())
    write_json(path, parts)
    return parts


def run_distillation(cfg: DistillConfig, out: str | Path, *, progress: bool = True,
                     on_stage: Callable[[str, dict], None] | None = None) -> dict[str, Any]:
    """Every stage, resumable; returns the raw results (rows, EMA* choices, searches, training times)."""
    import torch

    out = Path(out)
    check_out_folder(cfg, out)
    clock = StageClock(on_stage)
    stage = clock.run

    specs = cfg.runs()
    data = load_digits_data()
    scorer = stage("feature spaces and references", Scorer, specs["cd"].demo, data)
    parts = stage("estimate", _estimate, cfg, scorer, data, out)
    if on_stage:
        on_stage("estimate", {"seconds": sum(parts.values()), "parts": parts})
    stage("training", train_runs, cfg, out, _teacher_maker(cfg, out, scorer), progress)
    runs = {n: run_of(out, s) for n, s in specs.items()}
    grids, searches, rows = {}, {}, []
    for n, s in specs.items():
        grids[n] = stage(f"EMA* grid {n}", _grid, s, runs[n], out, scorer, s.demo.points, progress)
    for n, s in specs.items():
        searches[n] = stage(f"LCSC {n}", _searches, s, runs[n], out, scorer, grids[n], progress)
    with tqdm(desc="held-out rows", disable=not progress) as bar:
        for n, s in specs.items():
            rows += stage(f"held-out {n}", _rows, s, runs[n], out, scorer, grids[n], searches[n], bar)
    return {"config": cfg.to_dict(), "rows": rows, "stages": clock.stages, "threads": torch.get_num_threads(), "lanes": lanes(),
            "estimate": parts,
            "train_s": {n: r.train_s for n, r in runs.items()},
            "ema_star": {n: {str(p): g["star"] for p, g in grids[n].items()} for n in specs},
            "interior": {n: {str(p): g["interior"] for p, g in grids[n].items()} for n in specs},
            "searches": {n: [_search_record(s) for s in searches[n].values()] for n in specs},
            "teacher": str(teacher_path(out))}
