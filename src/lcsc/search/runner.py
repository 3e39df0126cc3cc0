"""Run an LCSC coefficient search (Liu et al., Eq. 8; Algorithm 1 or CMA-ES) with a journal: resumable, budgeted."""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from lcsc.atomic import remove_stale_temps
from lcsc.checkpoints.reader import checkpoint_interval
from lcsc.errors import ConfigError
from lcsc.objectives.base import check_noise_separation, direction_sign
from lcsc.progress import ticking
from lcsc.search.basis import CoefficientSpace
from lcsc.search.config import SearchConfig
from lcsc.search.evaluator import Evaluator, coefficient_hash, objective_summary
from lcsc.search.finish import ANCHOR_PREFIX, best_anchor, best_initial, revalidate, shrink
from lcsc.search.journal import Journal
from lcsc.search.optimizer import check_optimizer, make_optimizer
from lcsc.search.ranking import FULL, RACE
from lcsc.search.space import SearchSpace, default_half_lives, ema_continuation

__all__ = ["Merger", "SearchResult", "initial_count", "checkpoint_interval", "coefficient_hash", "objective_summary", "run_search",
           "anchor_individuals", "anchors_of", "ANCHOR_PREFIX"]


class Merger(Protocol):
    """What the search needs from merging (see :class:`lcsc.merge.StackMerger`)."""

    K: int
    G: int
    steps: list[int]
    hashes: list[str]

    def merge_many(self, A: np.ndarray) -> list[dict[str, torch.Tensor]]: ...


@dataclass
class SearchResult:
    """The best individual found (among full-count scores) and what it took."""

    best: np.ndarray
    best_score: float
    best_index: int
    best_name: str | None
    evaluations: int
    objective_calls: int
    stopped: str
    init_scores: dict[str, float | None] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    redraws: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    journal_path: Path | None = None
    samples: int = 0
    best_w: np.ndarray | None = None
    space: str = "full"
    optimizer: dict[str, Any] = field(default_factory=dict)
    init_projection_error: float = 0.0
    best_initial: np.ndarray | None = None
    best_initial_name: str | None = None
    best_initial_score: float | None = None
    revalidation: dict[str, Any] | None = None
    shrink: dict[str, Any] | None = None
    search_best: np.ndarray | None = None  # the best on the search noise (before revalidation or shrinkage)
    best_anchor: np.ndarray | None = None  # the best anchor alone on the search noise (None without anchors)
    best_anchor_name: str | None = None
    gradient: dict[str, Any] | None = None  # the gradient search's record (lcsc.search.gradient), None for Alg. 1


def anchors_of(merger: Any) -> list[dict[str, Any]]:
    """The merger's anchors (rows after the window: name, sha256, kind, ema_rate, …), in row order; [] without."""
    return list(getattr(merger, "anchors", None) or [])


def _padded(a: np.ndarray, K: int, G: int) -> np.ndarray:
    """Window coefficients (G, K_w) with zeros for the anchor rows after them."""
    out = np.zeros((G, K))
    out[:, : a.shape[-1]] = a
    return out


def anchor_individuals(K: int, G: int, anchors: list[dict[str, Any]], interval: int) -> dict[str, np.ndarray]:
    """Each anchor alone (``anchor NAME``), then every online EMA continued from its window-start snapshot with its
    own rate (``continued NAME``: the EMA at the window's end, see :func:`ema_continuation`)."""
    K_w, out = K - len(anchors), {}
    for j, anchor in enumerate(anchors):
        a = np.zeros((G, K))
        a[:, K_w + j] = 1.0
        out[f"anchor {anchor['name']}"] = a
    for j, anchor in enumerate(anchors):
        if anchor.get("kind") == "ema-start" and anchor.get("ema_rate") is not None:
            window, start = ema_continuation(K_w, float(anchor["ema_rate"]), interval)
            a = _padded(np.tile(window, (G, 1)), K, G)
            a[:, K_w + j] = start
            out[f"continued {anchor['name']}"] = a
    return out


def _initial(space: CoefficientSpace, cfg: SearchConfig, steps: list[int], given: dict[str, np.ndarray] | None,
             anchors: list[dict[str, Any]] | None = None):
    """Named initial individuals as K-vectors: caller-given ones, the anchors alone and continued EMAs, then the EMA
    grid over the window (Algorithm 1, line 2)."""
    full = SearchSpace(space.K, space.G, cfg.convex)
    individuals = {name: full.validate(a, f"initial individual {name!r}") for name, a in (given or {}).items()}
    interval = cfg.interval or checkpoint_interval(steps)
    for name, a in anchor_individuals(space.K, space.G, anchors or [], interval).items():
        individuals.setdefault(name, full.validate(a, name))
    K_w = space.K - len(anchors or [])
    half_lives = cfg.half_lives if cfg.half_lives is not None else default_half_lives(K_w, interval, cfg.init_count)
    window = SearchSpace(K_w, space.G, cfg.convex)
    for name, a in window.ema_individuals(interval, list(half_lives)).items():
        individuals.setdefault(name, _padded(a, space.K, space.G))
    if not individuals:
        raise ConfigError("no initial individuals: give some or keep the EMA initialisation")
    return individuals


def initial_count(merger: Merger, config: SearchConfig, initial: dict[str, np.ndarray] | None = None) -> int:
    """How many initial individuals :func:`run_search` scores for ``merger`` (anchors alone, continued EMAs, the EMA
    grid and the caller's), i.e. the ``evals`` that scores the initial population and nothing else."""
    interval = config.interval or checkpoint_interval(merger.steps)
    anchors = anchors_of(merger)
    space = CoefficientSpace("full", merger.K, merger.G, interval, anchors=len(anchors))
    return len(_initial(space, config, merger.steps, initial, anchors))


def _header(merger, objective, cfg: SearchConfig, init: dict[str, np.ndarray], sigma: float, space) -> dict:
    header = {
        "version": 2, "steps": list(merger.steps), "hashes": list(merger.hashes), "G": merger.G, "K": merger.K,
        "config": cfg.optimizer_settings(), "sigma": sigma, "objective": objective_summary(objective),
        "initial": {name: coefficient_hash(a) for name, a in init.items()},
        "space": {"spec": space.spec, "D": space.D, "columns": space.column_names if space.kind != "full" else None},
    }  # fmt: skip
    if anchors_of(merger):
        header["anchors"] = [{"name": a["name"], "sha256": a["sha256"]} for a in anchors_of(merger)]
    return header


def _pool_identity(merger, objective) -> dict[str, Any]:
    """What every pool worker must reproduce: the driver's checkpoints and objective noise."""
    ident: dict[str, Any] = {"hashes": list(merger.hashes), "K": merger.K, "G": merger.G,
                             "anchors": [a["sha256"] for a in anchors_of(merger)]}
    if hasattr(objective, "noise_fingerprint"):
        ident["noise_sha"] = objective.noise_fingerprint()
    return ident


def _batched(objective: Any) -> bool:
    """Whether ``objective`` (or a term of a ``mean:`` objective) samples a whole generation as one batch."""
    terms = getattr(objective, "terms", None)
    return bool(getattr(objective, "batched", False)) or (isinstance(terms, (list, tuple))
                                                         and any(_batched(t) for t in terms))


def _check_pool(objective: Any, pool: Any) -> None:
    """Pool workers score one candidate at a time (``score``); a serial batched search scores a generation with
    ``score_many``, which rounds differently, so the pool's journal would not be the serial one: refused."""
    if pool is not None and _batched(objective):
        raise ConfigError("--batched-sampling cannot be combined with --workers / --ray-address: Ray workers score "
                          "one candidate at a time, so the scores would differ from a serial batched search's; "
                          "drop one of them")


def _open_journal(path: Path, header: dict, resume: bool) -> Journal:
    if not resume:
        return Journal.create(path, header)
    journal = Journal.load(path)  # (drops a record torn by a kill; that candidate is evaluated again)
    remove_stale_temps(path.parent)  # outputs a killed run was writing (one search per folder)
    journal.check_checkpoints(header["steps"], header["hashes"])
    old = {**SearchConfig().optimizer_settings(), **journal.header.get("config", {})}
    old["half_lives"] = tuple(old["half_lives"]) if old.get("half_lives") is not None else None
    for key, value in header["config"].items():
        if old.get(key) != value:
            raise ConfigError(f"{path}: cannot resume with a different {key} ({old.get(key)!r} in the journal, "
                              f"{value!r} now); resume with the journal's settings or start a new folder")
    if journal.header.get("anchors", []) != header.get("anchors", []):
        raise ConfigError(f"{path}: cannot resume with other anchors ({_names(journal.header)} in the journal, "
                          f"{_names(header)} now); pass the journal's anchors or start a new folder")
    for key in ("sigma", "initial", "G"):
        if journal.header.get(key) != header.get(key):
            raise ConfigError(f"{path}: cannot resume with a different {key} "
                              f"({journal.header.get(key)} != {header.get(key)})")
    return journal


def _names(header: dict) -> list[str]:
    return [f"{a['name']} ({a['sha256'][:12]})" for a in header.get("anchors", [])]


def _objectives(objective: Any, cfg: SearchConfig) -> dict[str, Any]:
    """The full-count objective and, with racing, the same objective on a prefix of its samples."""
    out = {FULL: objective}
    if cfg.racing:
        n = getattr(objective, "num_samples", None)
        if n is None or not hasattr(objective, "with_samples"):
            raise ConfigError("--racing needs an objective that scores on a prefix of its samples (the built-in "
                              "generative objectives, or an object with num_samples and with_samples(n))")
        out[RACE] = objective.with_samples(max(2, int(round(cfg.race_fraction * n))))
    return out


def run_search(merger: Merger, objective: Any, config: SearchConfig, out_dir: str | Path, *,
               initial: dict[str, np.ndarray] | None = None, resume: bool = False, progress: bool = True,
               on_event: Callable[[str, dict], None] | None = None, pool: Any = None) -> SearchResult:
    """Search coefficients for ``merger``'s checkpoints that optimise ``objective``; journal in ``out_dir``.

    ``initial`` adds caller-given individuals (e.g. a post-hoc EMA) to the EMA initial population. With
    ``resume=True`` the journal in ``out_dir`` is continued; the result equals that of an uninterrupted run.
    ``on_event(kind, info)`` receives ``"ready"`` (every setting checked; nothing written yet: the moment to save
    what a resume needs), ``"estimate"`` (after the initial population and after the first generation, when scored now) and ``"generation"`` events. ``pool`` (e.g.
    :class:`lcsc.search.distributed.RayPool`) scores candidates on workers that own copies of the merger and
    objective; ``objective`` here still calibrates, revalidates and names the run. The journal is the same.
    """
    if getattr(objective, "role", "search") != "search":
        raise ConfigError("refusing to search with a held-out objective: held-out noise is for reporting only")
    check_noise_separation(objective)
    _check_pool(objective, pool)
    if config.revalidate and not hasattr(objective, "validation"):
        raise ConfigError("--revalidate needs an objective with validation() (another noise seed), like the "
                          "built-in generative objectives")
    interval = config.interval or checkpoint_interval(merger.steps)
    anchors = anchors_of(merger)
    space = CoefficientSpace(config.space, merger.K, merger.G, interval, anchors=len(anchors))
    sigma = config.sigma if config.sigma is not None else 1.0 / merger.K
    check_optimizer(config.optimizer, convex=config.convex, sigma=sigma / space.step_scale(), popsize=config.popsize,
                    G=space.G, D=space.D)  # everything make_optimizer checks, before anything is scored or written
    init = _initial(space, config, merger.steps, initial, anchors)
    if config.evals < len(init):
        raise ConfigError(f"evals={config.evals} is smaller than the {len(init)} initial individuals")
    objectives = _objectives(objective, config)
    emit, path = on_event or (lambda *_: None), Path(out_dir) / "journal.jsonl"
    if not resume:
        Journal.check_new(path)
    if pool is not None:
        pool.start(_pool_identity(merger, objective), getattr(objectives.get(RACE), "num_samples", None))
    emit("ready", {"out_dir": Path(out_dir)})
    journal = _open_journal(path, _header(merger, objective, config, init, sigma, space), resume)
    bar = tqdm(total=config.evals, desc="LCSC search", unit="cand", disable=not progress)
    ev = Evaluator(merger, objectives, journal, space.to_coefficients, space.kind != "full", bar, config.max_time,
                   pool=pool)
    try:
        with ticking(bar) if progress else contextlib.nullcontext():  # the elapsed time moves within a candidate
            stopped, opt, proj_err = _loop(ev, space, init, config, sigma, emit)
            revalidation = revalidate(ev, objective, config.revalidate) if config.revalidate else None
            result = _result(ev, space, init, stopped, opt, proj_err, revalidation)
            if config.shrink != 1.0:
                shrink(ev, space, objective, result, config.shrink)
    finally:
        bar.close()
    return result


def _initial_generation(ev: Evaluator, space: CoefficientSpace, init: dict[str, np.ndarray]):
    """Generation 0: the initial individuals projected into the space, scored on the full count (objectives that
    normalise themselves on the initial population are calibrated here, once, and the calibration journalled)."""
    names = list(init)
    projected = [space.project(init[n]) for n in names]
    cands = ev.propose(0, [w for w, _ in projected], names)
    objective, given, cache = ev.objectives[FULL], None, {}
    if hasattr(objective, "calibrate"):
        saved = ev.journal.find_meta("calibration")
        if saved is None:
            states = list(ev._states(cands, len(cands), cache).values())
            reference = [i for i, n in enumerate(names) if n.startswith(ANCHOR_PREFIX)]
            takes = "reference" in inspect.signature(objective.calibrate).parameters
            state = objective.calibrate(states, reference=reference) if reference and takes else \
                objective.calibrate(states)
            ev.journal.append_meta("calibration", {"state": state})
            given = {c.index: s for c, s in zip(cands, state["scores"])}
        else:
            objective.load_calibration(saved["state"])
        if ev.pool is not None:
            ev.pool.load_calibration(saved["state"] if saved is not None else state)
        if RACE in ev.objectives:  # rebuild the racing copy so it shares the calibration
            ev.objectives[RACE] = objective.with_samples(ev.objectives[RACE].num_samples)
    ev.score_stage(cands, cands, FULL, len(cands), cache, given)
    return cands, max((e for _, e in projected), default=0.0)


def _loop(ev: Evaluator, space: CoefficientSpace, init, cfg: SearchConfig, sigma: float, on_event):
    t0, calls = time.time(), ev.calls
    cands, proj_err = _initial_generation(ev, space, init)
    if ev.calls > calls:  # scored now, not replayed from the journal
        per = (time.time() - t0) / (ev.calls - calls)
        on_event("estimate", {"generation": 0, "seconds_per_eval": per, "evaluations_left":
                              cfg.evals - len(ev.candidates), "total_s": per * (cfg.evals - len(ev.candidates))})
    opt = make_optimizer(cfg.optimizer, space=space, init_ws=[c.w for c in cands],
                         init_keys=[c.key(ev.direction) for c in cands], sigma=sigma, seed=cfg.seed,
                         generation_size=cfg.generation_size, parents=cfg.parents, mix_prob=cfg.mix_prob,
                         convex=cfg.convex, popsize=cfg.popsize)
    generation = 1
    while len(ev.candidates) < cfg.evals:
        replaying = (len(ev.candidates), FULL) in ev.done or (len(ev.candidates), RACE) in ev.done
        if not replaying:
            if ev.out_of_time():
                return "max_time", opt, proj_err
            if cfg.max_samples is not None and ev.samples >= cfg.max_samples:
                return "max_samples", opt, proj_err
        t_gen = time.time()
        count = min(opt.generation_size, cfg.evals - len(ev.candidates))
        ws = opt.ask(count)
        gen = ev.propose(generation, ws, [None] * count)
        _score_generation(ev, gen, cfg, opt.generation_size)
        opt.tell(ws, [c.key(ev.direction) for c in gen])
        if generation == 1 and not replaying:
            per = (time.time() - t_gen) / max(1, count)
            on_event("estimate", {"generation": 1, "seconds_per_eval": per, "evaluations_left":
                                  cfg.evals - len(ev.candidates), "total_s": per * (cfg.evals - len(ev.candidates))})
        on_event("generation", {"generation": generation, "evaluations": len(ev.candidates)})
        generation += 1
    return "evals", opt, proj_err


def _score_generation(ev: Evaluator, gen, cfg: SearchConfig, width: int) -> None:
    cache: dict = {}
    if not cfg.racing:
        ev.score_stage(gen, gen, FULL, width, cache)
        return
    ev.score_stage(gen, gen, RACE, width, cache)
    raced = sorted((c for c in gen if c.scores.get(RACE) is not None), key=lambda c: (c.key(ev.direction), c.index))
    keep = max(1, math.ceil(cfg.race_keep * len(gen)))
    ev.score_stage(gen, raced[:keep], FULL, width, cache)


def _result(ev: Evaluator, space: CoefficientSpace, init, stopped: str, opt, proj_err: float,
            revalidation: dict[str, Any] | None = None) -> SearchResult:
    records = ev.journal.records
    best = search_best = ev.best()
    anchor = best_anchor(ev)
    if revalidation is not None and revalidation.get("picked") is not None:
        best = ev.candidates[revalidation["candidates"][revalidation["picked"]]]
    first = best_initial(ev)
    if best is None:
        raise ConfigError(f"every evaluation failed; first error: {records[0]['error'] if records else 'none'}")
    history, best_loss, sign = [], math.inf, direction_sign(ev.direction)
    for c in ev.candidates:
        s = c.scores.get(FULL)
        if s is not None and sign * s < best_loss:
            best_loss = sign * s
            history.append((c.index + 1, s))
    return SearchResult(
        best=best.a, best_score=best.scores[FULL], best_index=best.index, best_name=best.name,
        evaluations=len(ev.candidates), objective_calls=ev.calls, stopped=stopped,
        init_scores={c.name: c.scores.get(FULL) for c in ev.candidates if c.generation == 0},
        failures=[{"index": r["index"], "candidate": r["candidate"], "stage": r["stage"], "error": r["error"]}
                  for r in records if r["status"] == "failed"],
        redraws=getattr(opt, "redraws", 0), history=history,
        wall_time_s=max((r["elapsed_s"] for r in records), default=0.0), journal_path=ev.journal.path,
        samples=ev.samples + (revalidation or {}).get("samples", 0), best_w=best.w, space=space.spec,
        optimizer=opt.settings(), revalidation=revalidation,
        init_projection_error=proj_err, best_initial=None if first is None else first.a,
        best_initial_name=None if first is None else first.name,
        best_initial_score=None if first is None else first.scores[FULL],
        search_best=None if search_best is None else search_best.a,
        best_anchor=None if anchor is None else anchor.a, best_anchor_name=None if anchor is None else anchor.name,
    )  # fmt: skip
