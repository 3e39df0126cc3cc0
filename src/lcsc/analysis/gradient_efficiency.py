# Gradient LCSC vs Algorithm 1 (Liu et al., Alg. 1) at the demo's settings: held-out FD against samples and core-seconds.
"""One (training seed, model) cell of the gradient benchmark: the demo's trained run, its EMA* at the end of training,
the demo's anchored Algorithm 1 with its validation guard, and the gradient search (:mod:`lcsc.search.gradient`) on
the same anchored stack and objective, each gradient setting of :data:`GRAD_SETTINGS`. Every export, and the gradient
search's last iterate after 10, 20, 40, … steps, is scored on held-out noise: *check* noise on decision seeds (the
only place a setting is chosen, :mod:`lcsc.protocol`), report noise (with the report-only FD4) on report seeds.
Search costs are process CPU seconds (``time.process_time``: core-seconds) measured in the same process, plus the
samples each search drew. Results are JSON dicts, cached per cell, so the benchmark resumes after a kill.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from lcsc import protocol
from lcsc.atomic import write_json
from lcsc.checkpoints import CheckpointStack
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.scoring import Scorer
from lcsc.experiment.stages import (
    ModelRun,
    demo_anchors,
    ema_grid_scores,
    ema_star_choice,
    ema_state_named,
    lcsc_search,
)
from lcsc.merge import StackMerger, groups_by_prefix
from lcsc.models import load_model
from lcsc.search.grad_config import GradConfig
from lcsc.search.gradient import GRADIENT_JOURNAL, run_gradient_search
from lcsc.search.journal import Journal

__all__ = ["GRAD_SETTINGS", "TRAJECTORY", "cell", "scores_of", "decide_setting", "DECISION_RULE"]

# Candidate settings (decision seeds only): the probe's, a larger LR, half the steps (within Alg. 1's core-seconds on
# decision seed 0's DM, where 80 steps took 1.3x Alg. 1's), per-block groups (80 steps: seed 0 only).
GRAD_SETTINGS: dict[str, dict[str, Any]] = {
    "probe": {"grad": {"steps": 80, "batch_size": 256, "lr": 2e-3}, "groups": None},
    "lr5e-3": {"grad": {"steps": 80, "batch_size": 256, "lr": 5e-3}, "groups": None},
    "short": {"grad": {"steps": 40, "batch_size": 256, "lr": 4e-3}, "groups": None},
    "groups": {"grad": {"steps": 80, "batch_size": 256, "lr": 2e-3}, "groups": "prefix:2"},  # 9 blocks
    # added after seed 0's "groups" (the best there, 1.4x Alg. 1's core-seconds): per-block groups at "short"'s cost
    "groups-short": {"grad": {"steps": 40, "batch_size": 256, "lr": 4e-3}, "groups": "prefix:2"},
}
TRAJECTORY = (10, 20, 40)  # the last iterate after these steps is scored too (sample efficiency)
DECISION_RULE = ("among the settings run on every decision cell whose mean core-seconds are within the demo's Alg. 1's "
                 "on both models, the one with the most (seed, model, space) triples below both EMA* and Alg. 1 on "
                 "check noise; ties: the lowest mean held-out FD / EMA* FD; if none is within Alg. 1's cost, the "
                 "cheapest")


def scores_of(scorer: Scorer, net, state, nfe: int, cfg: DemoConfig) -> dict[str, float]:
    """Held-out FD in every space: check noise (decision seeds: FD_digits, FD2, FD3) or report noise (+ FD4)."""
    if cfg.held_out_noise == "decision":
        seeds = protocol.held_out_seeds(cfg.seed, cfg.eval_seeds, "decision")
        with protocol.deciding(f"gradient benchmark seed {cfg.seed} held-out"):
            return scorer.space_scores(net, state, nfe, seeds, cfg.eval_samples)
    row = scorer.held_out(net, state, nfe, full=False)
    return {"digits": row.fd_mean, "digits2": row.fd2_mean, "digits3": row.fd3_mean, "digits4": row.fd4_mean}


def _timed(fn, *args, **kw):
    c0, w0 = time.process_time(), time.time()
    out = fn(*args, **kw)
    return out, time.process_time() - c0, time.time() - w0


def _ema_star(run: ModelRun, cfg: DemoConfig, scorer: Scorer) -> str:
    ema_grid_scores(run, cfg, scorer, cfg.iterations)
    return ema_star_choice(cfg, run.ema_finalists[cfg.iterations])[0]


def _merger(run: ModelRun, cfg: DemoConfig, star: str, groups: str | None) -> StackMerger:
    stack = CheckpointStack.open(run.run_dir / "windows" / str(cfg.iterations), progress=False)
    stack = stack.with_anchors(demo_anchors(run, cfg, cfg.iterations, star, stack))
    return StackMerger(stack, groups_by_prefix(stack.layout, int(groups.partition(":")[2])) if groups else None,
                       device=cfg.device)


def _gradient(run: ModelRun, cfg: DemoConfig, scorer: Scorer, star: str, name: str, work: Path) -> dict[str, Any]:
    spec = GRAD_SETTINGS[name]
    grad = GradConfig(**spec["grad"])
    merger = _merger(run, cfg, star, spec["groups"])
    objective = scorer.search_objective(load_model(run.run_dir / "last.safetensors", cfg.device), run.nfe)
    out = work / f"{run.name}-grad-{name}"
    resume = (out / GRADIENT_JOURNAL).is_file()
    with protocol.deciding(f"gradient search {run.name} seed {cfg.seed}"):
        result, cpu, wall = _timed(run_gradient_search, merger, objective, cfg.search_config(1, anchored=True), grad,
                                   out, resume=resume, progress=False)
    steps = [m for m in Journal.load(out / GRADIENT_JOURNAL).meta if m["type"] == "step"]
    return {"result": result, "merger": merger, "cpu_s": cpu, "wall_s": wall, "steps": steps,
            "init_samples": result.samples - result.gradient["samples"] - result.gradient["guard"]["samples"]}


def cell(cache: Path, work: Path, cfg: DemoConfig, scorer: Scorer, model: str, settings: list[str]) -> dict[str, Any]:
    """EMA*, the demo's anchored Alg. 1 and the gradient settings on one (seed, model); cached in ``work``."""
    path = work / f"seed{cfg.seed}-{model}-{cfg.held_out_noise}.json"
    done = json.loads(path.read_text()) if path.is_file() else {"seed": cfg.seed, "model": model,
                                                               "held_out_noise": cfg.held_out_noise, "rows": {}}
    run = ModelRun(model, cache / f"demo-seed{cfg.seed}" / model, cfg.dm_nfe if model == "dm" else cfg.cm_nfe, 0.0)
    net = load_model(run.run_dir / "last.safetensors", cfg.device)
    if "ema_star" not in done:
        with protocol.deciding(f"EMA* {model} seed {cfg.seed}"):
            done["ema_star"] = _ema_star(run, cfg, scorer)
        done["rows"]["EMA*"] = {"scores": scores_of(scorer, net, ema_state_named(run, done["ema_star"],
                                                                                cfg.iterations), run.nfe, cfg)}
        write_json(path, done)
    star = done["ema_star"]
    if "alg1" not in done["rows"]:
        with protocol.deciding(f"Alg. 1 {model} seed {cfg.seed}"):
            search, cpu, wall = _timed(lcsc_search, run, cfg, scorer, cfg.iterations, cfg.search_evals(model), work,
                                       False, star)
        state = search.merger.merge_many(np.asarray(search.result.best)[None])[0]
        done["rows"]["alg1"] = {"scores": scores_of(scorer, net, state, run.nfe, cfg), "cpu_s": cpu, "wall_s": wall,
                                "samples": search.result.samples, "evals": search.result.evaluations,
                                "exported": search.result.best_name}
        write_json(path, done)
    for name in settings:
        if f"grad-{name}" not in done["rows"]:
            done["rows"].update(_gradient_rows(run, cfg, scorer, star, name, work, net))
            write_json(path, done)
    return done


def _gradient_rows(run, cfg, scorer, star, name, work, net) -> dict[str, dict[str, Any]]:
    g = _gradient(run, cfg, scorer, star, name, work)
    res, merger, rows = g["result"], g["merger"], {}
    batch = GRAD_SETTINGS[name]["grad"]["batch_size"]
    for t in TRAJECTORY:
        if t <= len(g["steps"]):
            a = np.asarray(g["steps"][t - 1]["a"])
            rows[f"grad-{name}@{t}"] = {"scores": scores_of(scorer, net, merger.merge_many(a[None])[0], run.nfe, cfg),
                                        "samples": g["init_samples"] + t * batch, "steps": t}
    state = merger.merge_many(np.asarray(res.best)[None])[0]
    rows[f"grad-{name}"] = {"scores": scores_of(scorer, net, state, run.nfe, cfg), "cpu_s": g["cpu_s"],
                            "wall_s": g["wall_s"], "samples": res.samples, "steps": res.gradient["steps_done"],
                            "exported": res.best_name, "guard": res.gradient["guard"]["scores"],
                            "loss_first_last": [res.gradient["losses"][0], res.gradient["losses"][-1]],
                            "coefficients": np.asarray(res.best).tolist()}
    return rows


def decide_setting(cells: list[dict[str, Any]], settings: list[str]) -> dict[str, Any]:
    """:data:`DECISION_RULE` over decision-seed cells scored on check noise (report data is refused)."""
    protocol.check_decision_jobs([{"train_seed": c["seed"], "held_out_noise": c["held_out_noise"],
                                   "spaces": list(c["rows"]["EMA*"]["scores"])} for c in cells],
                                 "the gradient setting decision")
    table = {name: _tally(cells, name) for name in settings if all(f"grad-{name}" in c["rows"] for c in cells)}
    within = [n for n, t in table.items() if all(r <= 1.0 for r in t["cost_ratio_to_alg1"].values())]
    chosen = min(within, key=lambda n: (-table[n]["wins"], table[n]["mean_ratio_to_ema_star"])) if within else \
        min(table, key=lambda n: max(table[n]["cost_ratio_to_alg1"].values()))
    return {"rule": DECISION_RULE, "table": table, "chosen": chosen}


def _tally(cells: list[dict[str, Any]], name: str) -> dict[str, Any]:
    wins, ratios, cost = 0, [], {}
    for c in cells:
        row = c["rows"][f"grad-{name}"]
        cost.setdefault(c["model"], []).append(row["cpu_s"] / c["rows"]["alg1"]["cpu_s"])
        for space, v in row["scores"].items():
            wins += int(v < c["rows"]["EMA*"]["scores"][space] and v < c["rows"]["alg1"]["scores"][space])
            ratios.append(v / c["rows"]["EMA*"]["scores"][space])
    return {"wins": wins, "triples": len(ratios), "mean_ratio_to_ema_star": float(np.mean(ratios)),
            "cost_ratio_to_alg1": {m: float(np.mean(v)) for m, v in cost.items()}}


def with_noise(cfg: DemoConfig, noise: str) -> DemoConfig:
    """The demo config scored on ``noise`` ("decision": check noise; "report")."""
    return dataclasses.replace(cfg, held_out_noise=noise)
