"""Run LCSC's evolutionary search (Liu et al., Algorithm 1) with a journal: resumable, reproducible, budgeted."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from lcsc.errors import ConfigError
from lcsc.search.config import SearchConfig
from lcsc.search.evolution import EvolutionParams, propose_generation, rank
from lcsc.search.journal import Journal
from lcsc.search.space import SearchSpace, default_half_lives

__all__ = [
    "Merger",
    "SearchResult",
    "checkpoint_interval",
    "coefficient_hash",
    "objective_summary",
    "run_search",
]


class Merger(Protocol):
    """What the search needs from merging (see :class:`lcsc.merge.StackMerger`)."""

    K: int
    G: int
    steps: list[int]
    hashes: list[str]

    def merge_many(self, A: np.ndarray) -> list[dict[str, torch.Tensor]]: ...


@dataclass
class SearchResult:
    """The best individual found and what it took."""

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


def coefficient_hash(individual: np.ndarray) -> str:
    """Identity of a coefficient vector (exact float64 bytes)."""
    return hashlib.sha256(np.ascontiguousarray(individual, dtype="<f8").tobytes()).hexdigest()[:20]


def objective_summary(objective: Any) -> dict[str, Any]:
    """Name, direction, role and seeds of an objective (what the journal and card record)."""
    info: dict[str, Any] = {
        "name": str(getattr(objective, "name", type(objective).__name__)),
        "direction": getattr(objective, "direction", "minimize"),
        "role": getattr(objective, "role", "search"),
    }
    for key in ("noise_seed", "held_out_seed", "num_samples", "nfe"):
        if hasattr(objective, key):
            info[key] = getattr(objective, key)
    return info


def _loss(score: float | None, direction: str) -> float | None:
    if score is None:
        return None
    return score if direction == "minimize" else -score


def checkpoint_interval(steps: list[int]) -> int:
    """Iterations between checkpoints (the median step gap), used for the EMA initial individuals."""
    gaps = np.diff(np.asarray(steps))
    return max(1, int(np.median(gaps))) if len(gaps) else 1


class _Run:
    """Mutable state of one search: the population as read from / written to the journal."""

    def __init__(
        self, merger, objective, journal: Journal, space: SearchSpace, cfg: SearchConfig, bar, on_event
    ):
        self.merger, self.objective, self.journal, self.space, self.cfg = (
            merger,
            objective,
            journal,
            space,
            cfg,
        )
        self.direction = getattr(objective, "direction", "minimize")
        self.bar, self.on_event, self.t0 = bar, on_event, time.time()
        self.population = [np.asarray(r["coefficients"], dtype=np.float64) for r in journal.records]
        self.losses = [_loss(r["score"], self.direction) for r in journal.records]
        self.seen = {r["hash"]: r["score"] for r in journal.records if r["status"] in ("ok", "cached")}
        self.calls = sum(r["status"] != "cached" for r in journal.records)
        self.elapsed_before = max((r.get("elapsed_s", 0.0) for r in journal.records), default=0.0)

    @property
    def done(self) -> int:
        return len(self.journal.records)

    def out_of_time(self) -> bool:
        return self.cfg.max_time is not None and time.time() - self.t0 >= self.cfg.max_time

    def _score_batch(self, states: list[dict[str, torch.Tensor]]) -> list[tuple[float | None, str | None]]:
        if hasattr(self.objective, "score_many"):
            try:
                return [_checked(v) for v in self.objective.score_many(states)]
            except Exception:  # noqa: BLE001 - fall back to one at a time to isolate the failure
                pass
        return [_safe_score(self.objective, s) for s in states]

    def evaluate(
        self, generation: int, children: list[np.ndarray], names: list, start: int, width: int, extra: dict
    ) -> None:
        """Score ``children[start:]`` (those not already journalled); duplicates come from the journal.

        The whole generation is merged in one pass, padded to ``width`` rows, so every candidate's merged
        weights are bit-identical whether the generation runs whole or is resumed part-way.
        """
        t_start = time.time()
        padded = children + [np.zeros_like(children[0])] * (width - len(children))
        states = self.merger.merge_many(np.stack(padded))
        hashes = [coefficient_hash(c) for c in children]
        fresh, planned = [], set(self.seen)
        for i in range(start, len(children)):
            if hashes[i] not in planned:
                fresh.append(i)
                planned.add(hashes[i])
        results = dict(zip(fresh, self._score_batch([states[i] for i in fresh]) if fresh else []))
        by_hash = {hashes[i]: r for i, r in results.items()}
        per_eval = (time.time() - t_start) / max(1, len(fresh))
        for i in range(start, len(children)):
            h = hashes[i]
            if i in results:
                (score, error), status = results[i], "ok" if results[i][1] is None else "failed"
                self.calls += 1
            else:
                (score, error), status = (self.seen[h], None) if h in self.seen else by_hash[h], "cached"
            self._record(
                generation,
                children[i],
                names[i],
                h,
                score,
                status,
                error,
                per_eval if i in results else 0.0,
                extra,
            )

    def _record(self, generation, child, name, h, score, status, error, eval_s, extra) -> None:
        self.journal.append({
            "index": self.done, "generation": generation, "name": name, "coefficients": child.tolist(), "hash": h,
            "score": score, "status": status, "error": error, **extra,
            "wall_time": time.time(), "elapsed_s": self.elapsed_before + time.time() - self.t0, "eval_s": eval_s,
        })  # fmt: skip
        self.population.append(child)
        self.losses.append(_loss(score, self.direction))
        if status != "failed":
            self.seen.setdefault(h, score)
        best = self.best_index()
        self.bar.update(1)
        if best is not None:
            self.bar.set_postfix(best=f"{self.journal.records[best]['score']:.5g}", refresh=False)

    def best_index(self) -> int | None:
        order = rank(self.losses)
        return order[0] if order else None


def _checked(value: Any) -> tuple[float | None, str | None]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None, f"objective returned {type(value).__name__}, not a number"
    return (value, None) if math.isfinite(value) else (None, f"objective returned {value}")


def _safe_score(objective, state) -> tuple[float | None, str | None]:
    try:
        return _checked(objective.score(state))
    except Exception as exc:  # noqa: BLE001 - a failing candidate is recorded, the search goes on
        return None, f"{type(exc).__name__}: {exc}"[:500]


def _initial(space: SearchSpace, cfg: SearchConfig, steps: list[int], given: dict[str, np.ndarray] | None):
    individuals = {
        name: space.validate(a, f"initial individual {name!r}") for name, a in (given or {}).items()
    }
    interval = cfg.interval or checkpoint_interval(steps)
    half_lives = (
        cfg.half_lives
        if cfg.half_lives is not None
        else default_half_lives(space.K, interval, cfg.init_count)
    )
    for name, a in space.ema_individuals(interval, list(half_lives)).items():
        individuals.setdefault(name, a)
    if not individuals:
        raise ConfigError("no initial individuals: give some or keep the EMA initialisation")
    return individuals


def _header(merger, objective, cfg: SearchConfig, init: dict[str, np.ndarray], sigma: float) -> dict:
    return {
        "version": 1, "steps": list(merger.steps), "hashes": list(merger.hashes), "G": merger.G, "K": merger.K,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("evals", "max_time")}, "sigma": sigma,
        "objective": objective_summary(objective),
        "initial": {name: coefficient_hash(a) for name, a in init.items()},
    }  # fmt: skip


def _open_journal(path: Path, header: dict, resume: bool) -> Journal:
    if not resume:
        return Journal.create(path, header)
    journal = Journal.load(path)
    journal.check_checkpoints(header["steps"], header["hashes"])
    for key in ("config", "sigma", "initial", "G"):
        if journal.header.get(key) != header.get(key):
            raise ConfigError(
                f"{path}: cannot resume with a different {key} ({journal.header.get(key)} != {header.get(key)})"
            )
    return journal


def run_search(
    merger: Merger,
    objective: Any,
    config: SearchConfig,
    out_dir: str | Path,
    *,
    initial: dict[str, np.ndarray] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_event: Callable[[str, dict], None] | None = None,
) -> SearchResult:
    """Search coefficients for ``merger``'s checkpoints that optimise ``objective``; journal in ``out_dir``.

    ``initial`` adds caller-given individuals (e.g. a post-hoc EMA) to the EMA initial population. With
    ``resume=True`` the journal in ``out_dir`` is continued; the result equals that of an uninterrupted run.
    ``on_event(kind, info)`` receives ``"estimate"`` (after the first generation) and ``"generation"`` events.
    """
    if getattr(objective, "role", "search") != "search":
        raise ConfigError(
            "refusing to search with a held-out objective: held-out noise is for reporting only"
        )
    space = SearchSpace(merger.K, merger.G, config.convex)
    sigma = config.sigma if config.sigma is not None else 1.0 / merger.K
    params = EvolutionParams(sigma, config.parents, config.generation_size, config.mix_prob)
    init = _initial(space, config, merger.steps, initial)
    if config.evals < len(init):
        raise ConfigError(f"evals={config.evals} is smaller than the {len(init)} initial individuals")
    journal = _open_journal(
        Path(out_dir) / "journal.jsonl", _header(merger, objective, config, init, sigma), resume
    )
    bar = tqdm(
        total=config.evals,
        initial=len(journal.records),
        desc="LCSC search",
        unit="eval",
        disable=not progress,
    )
    run = _Run(merger, objective, journal, space, config, bar, on_event or (lambda *_: None))
    try:
        stopped = _loop(run, init, params, config)
    finally:
        bar.close()
    return _result(run, init, stopped)


def _loop(run: _Run, init: dict[str, np.ndarray], params: EvolutionParams, cfg: SearchConfig) -> str:
    names = list(init)
    if run.done < len(names):
        run.evaluate(0, [init[n] for n in names], names, run.done, len(names), {"rng_state": None})
    last_gen = max((r["generation"] for r in run.journal.records), default=0)
    rng = np.random.default_rng(cfg.seed)
    generation = 1
    if last_gen >= 1:  # replay the last generation's proposal from its stored RNG state
        first = next(r for r in run.journal.records if r["generation"] == last_gen)
        rng.bit_generator.state = first["rng_state"]
        generation = last_gen
    while run.done < cfg.evals:
        if run.out_of_time():
            return "max_time"
        # the journal is in generation order: earlier generations first, then any of this one (on resume)
        start = sum(1 for r in run.journal.records if r["generation"] < generation)
        state = rng.bit_generator.state
        count = min(params.generation_size, cfg.evals - start)
        children, redraws = propose_generation(
            rng, run.population[:start], run.losses[:start], run.space, params, count
        )
        have = run.journal.records[start:]
        for r, c in zip(have, children):
            if r["hash"] != coefficient_hash(c):
                raise ConfigError(f"{run.journal.path}: replaying generation {generation} gave different children; "
                                  "the objective is not deterministic or the journal was edited")  # fmt: skip
        t_gen = time.time()
        extra = {"rng_state": state, "redraws": redraws}
        run.evaluate(generation, children, [None] * count, len(have), params.generation_size, extra)
        if generation == 1 and not have:
            per_eval = (time.time() - t_gen) / max(1, count)
            run.on_event(
                "estimate", {"seconds_per_eval": per_eval, "total_s": per_eval * (cfg.evals - run.done)}
            )
        run.on_event("generation", {"generation": generation, "evaluations": run.done})
        generation += 1
    return "evals"


def _result(run: _Run, init: dict[str, np.ndarray], stopped: str) -> SearchResult:
    records = run.journal.records
    best = run.best_index()
    if best is None:
        raise ConfigError(
            f"every evaluation failed; first error: {records[0]['error'] if records else 'none'}"
        )
    history, best_loss = [], math.inf
    for i, loss in enumerate(run.losses):
        if loss is not None and loss < best_loss:
            best_loss = loss
            history.append((i + 1, records[i]["score"]))
    return SearchResult(
        best=run.population[best], best_score=records[best]["score"], best_index=best, best_name=records[best]["name"],
        evaluations=len(records), objective_calls=run.calls, stopped=stopped,
        init_scores={r["name"]: r["score"] for r in records if r["generation"] == 0},
        failures=[{"index": r["index"], "error": r["error"]} for r in records if r["status"] == "failed"],
        redraws=sum({r["generation"]: r.get("redraws", 0) for r in records}.values()),
        history=history, wall_time_s=max((r["elapsed_s"] for r in records), default=0.0), journal_path=run.journal.path,
    )  # fmt: skip
