"""The search's bookkeeping: candidates, their racing / full-count scores, the journal (single writer), duplicates."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lcsc.errors import ConfigError
from lcsc.objectives.base import direction_sign
from lcsc.protocol import ProtocolError
from lcsc.search.journal import Journal
from lcsc.search.optimizer_base import Key
from lcsc.search.ranking import FULL, RACE, best_full

__all__ = ["Candidate", "Evaluator", "coefficient_hash", "objective_summary"]


def coefficient_hash(individual: np.ndarray) -> str:
    """Identity of a coefficient vector (exact float64 bytes)."""
    return hashlib.sha256(np.ascontiguousarray(individual, dtype="<f8").tobytes()).hexdigest()[:20]


def objective_summary(objective: Any) -> dict[str, Any]:
    """Name, direction, role, seeds and sample count of an objective (what the journal and card record)."""
    info: dict[str, Any] = {
        "name": str(getattr(objective, "name", type(objective).__name__)),
        "direction": getattr(objective, "direction", "minimize"),
        "role": getattr(objective, "role", "search"),
    }
    for key in ("noise_seed", "held_out_seed", "num_samples", "nfe", "normalizers", "autocast"):
        if getattr(objective, key, None) is not None:
            info[key] = getattr(objective, key)
    if hasattr(objective, "noise_fingerprint"):
        info["noise_sha"] = objective.noise_fingerprint()
    return info


@dataclass
class Candidate:
    """One proposed coefficient vector: its search coordinates, coefficients and scores by stage."""

    index: int
    generation: int
    w: np.ndarray
    a: np.ndarray
    hash: str
    name: str | None = None
    scores: dict[str, float | None] = field(default_factory=dict)  # stage → score (None: failed)

    def key(self, direction: str) -> Key:
        """Ranking key: (0, loss) with a full-count score, (1, loss) with a racing score only, None if failed."""
        for tier, stage in ((0, FULL), (1, RACE)):
            if stage in self.scores:
                s = self.scores[stage]
                return None if s is None else (tier, direction_sign(direction) * s)
        return None


class Evaluator:
    """Scores generations stage by stage, journals every record, and serves what the journal already holds."""

    def __init__(self, merger, objectives: dict[str, Any], journal: Journal, to_coefficients, structured: bool,
                 bar, max_time: float | None, pool=None) -> None:
        self.merger, self.objectives, self.journal, self.pool = merger, objectives, journal, pool
        self.to_coefficients, self.structured = to_coefficients, structured
        self.direction = getattr(objectives[FULL], "direction", "minimize")
        self.bar, self.max_time, self.t0 = bar, max_time, time.time()
        self.candidates: list[Candidate] = []
        self.done: dict[tuple[int, str], dict] = {}  # (candidate, stage) → record
        self.seen: dict[tuple[str, str], float] = {}  # (hash, stage) → score of a successful evaluation
        self.calls = sum(r["status"] != "cached" for r in journal.records)
        self.samples = sum(r.get("samples") or 0 for r in journal.records if r["status"] != "cached")
        self.elapsed_before = max((r.get("elapsed_s", 0.0) for r in journal.records), default=0.0)
        for r in journal.records:
            self.done[(r["candidate"], r["stage"])] = r
            if r["status"] != "failed":
                self.seen.setdefault((r["hash"], r["stage"]), r["score"])

    def out_of_time(self) -> bool:
        return self.max_time is not None and time.time() - self.t0 >= self.max_time

    def propose(self, generation: int, ws: list[np.ndarray], names: list[str | None]) -> list[Candidate]:
        """Register a generation's candidates (or check them against the journal when it already holds them)."""
        out = []
        for w, name in zip(ws, names):
            index = len(self.candidates)
            a = self.to_coefficients(w)
            cand = Candidate(index, generation, np.asarray(w), a, coefficient_hash(a), name)
            for stage in (RACE, FULL):
                rec = self.done.get((index, stage))
                if rec is not None:
                    if rec["hash"] != cand.hash:
                        raise ConfigError(f"{self.journal.path}: replaying generation {generation} gave different "
                                          "candidates; the journal was edited or written by another version")
                    cand.scores[stage] = rec["score"] if rec["status"] != "failed" else None
            self.candidates.append(cand)
            out.append(cand)
        return out

    def score_stage(self, generation: list[Candidate], subset: list[Candidate], stage: str, width: int,
                    states_cache: dict, given: dict[int, float] | None = None) -> None:
        """Score ``subset`` of ``generation`` at ``stage`` where the journal has no record yet; duplicates come from
        the journal or from the first of them in this batch; ``given`` holds scores already computed (by an
        objective's calibration) by candidate index."""
        todo = [c for c in subset if (c.index, stage) not in self.done]
        if not todo:
            return
        fresh, planned = [], {h for (h, s) in self.seen if s == stage}
        for c in todo:
            if c.hash not in planned:
                fresh.append(c)
                planned.add(c.hash)
        results = _Results(self._scores(generation, fresh, stage, width, states_cache, given))
        fresh_index = {c.index for c in fresh}
        by_hash = {c.hash: c.index for c in fresh}
        samples = getattr(self.objectives[stage], "num_samples", None)
        for c in todo:  # recorded in candidate order, whatever order a pool's workers finish in
            if c.index in fresh_index:
                score, error = results.get(c.index)
                status = "ok" if error is None else "failed"
                self.calls += 1
                self.samples += samples or 0
            else:
                hit = self.seen.get((c.hash, stage))
                (score, error), status = ((hit, None) if hit is not None else results.get(by_hash[c.hash])), "cached"
            self._record(c, stage, score, status, error, samples,
                         results.seconds(c.index) if c.index in fresh_index else 0.0)

    def _scores(self, generation: list[Candidate], fresh: list[Candidate], stage: str, width: int,
                states_cache: dict, given: dict[int, float] | None):
        """(index, (score, error), seconds or None) for each fresh candidate: from ``given``, from the pool's
        workers as they finish (any order), or merged and scored here."""
        if not fresh:
            return iter(())
        t0 = time.time()
        if given is not None:
            return ((c.index, _checked(given[c.index]), 0.0) for c in fresh)
        if self.pool is not None:
            rows = {c.index: i for i, c in enumerate(generation)}
            matrix = np.stack([c.a for c in generation] + [np.zeros_like(generation[0].a)] * (width - len(generation)))
            return self.pool.evaluate(stage, matrix, [(c.index, rows[c.index]) for c in fresh])
        states = self._states(generation, width, states_cache)
        objective = self.objectives[stage]
        if _one_at_a_time(objective):
            return self._stream(objective, fresh, states, t0)
        scored = self._score_batch(objective, [states[c.index] for c in fresh])
        per_eval = (time.time() - t0) / len(fresh)
        return ((c.index, r, per_eval) for c, r in zip(fresh, scored))

    @staticmethod
    def _stream(objective, fresh: list[Candidate], states: dict, t0: float):
        """Score one candidate at a time, lazily: each is recorded (and the bar moves) as soon as it is scored."""
        for c in fresh:
            result = _safe_score(objective, states[c.index])
            now = time.time()
            yield c.index, result, now - t0
            t0 = now

    def _states(self, cands: list[Candidate], width: int, cache: dict) -> dict[int, dict[str, torch.Tensor]]:
        """Merge the whole generation once, padded to ``width`` rows, so merged weights are bit-identical whether a
        generation runs whole or is resumed part-way (BLAS rounding depends on the batch shape)."""
        if not cache:
            rows = [c.a for c in cands] + [np.zeros_like(cands[0].a)] * (width - len(cands))
            cache.update(zip([c.index for c in cands], self.merger.merge_many(np.stack(rows))))
        return cache

    def _score_batch(self, objective, states) -> list[tuple[float | None, str | None]]:
        if hasattr(objective, "score_many"):
            try:
                return [_checked(v) for v in objective.score_many(states)]
            except ProtocolError:
                raise  # a decision touched report data: the search stops, it is not a failed candidate
            except Exception:  # noqa: BLE001 - fall back to one at a time to isolate the failure
                pass
        return [_safe_score(objective, s) for s in states]

    def _record(self, c: Candidate, stage: str, score, status: str, error, samples, eval_s: float) -> None:
        now = time.time()
        rec = {"index": len(self.journal.records), "candidate": c.index, "generation": c.generation, "stage": stage,
               "name": c.name, "coefficients": c.a.tolist(), "hash": c.hash, "score": score, "status": status,
               "error": error, "samples": samples, "wall_time": now,
               "elapsed_s": self.elapsed_before + now - self.t0, "eval_s": eval_s}
        if self.structured:
            rec["w"] = c.w.tolist()
        first = not any((c.index, s) in self.done for s in (RACE, FULL))
        self.journal.append(rec)
        self.done[(c.index, stage)] = self.journal.records[-1]
        c.scores[stage] = score if status != "failed" else None
        if status != "failed":
            self.seen.setdefault((c.hash, stage), score)
        self.bar.update(1 if first else 0)
        best = self.best()
        post = {"samples": self.samples}
        if best is not None:
            post["best"] = f"{best.scores[FULL]:.5g}"
        self.bar.set_postfix(post, refresh=False)

    def best(self) -> Candidate | None:
        """The best candidate among full-count scores only (racing scores never select)."""
        return best_full(self.candidates, self.direction)


class _Results:
    """Scores pulled from a stream on demand (a pool yields them as workers finish, in any order)."""

    def __init__(self, stream) -> None:
        self.stream = iter(stream)
        self.scores: dict[int, tuple[float | None, str | None]] = {}
        self.secs: dict[int, float] = {}

    def get(self, index: int) -> tuple[float | None, str | None]:
        while index not in self.scores:
            i, result, seconds = next(self.stream)
            self.scores[i], self.secs[i] = result, seconds
        return self.scores[index]

    def seconds(self, index: int) -> float:
        """Seconds spent on the candidate (a worker's own time; the batch's time shared out when scored here)."""
        return self.secs[index]


def _one_at_a_time(objective) -> bool:
    """True for objectives that gain nothing from scoring a batch together (no ``score_many``, or built-in
    generative objectives that sample state by state): they are scored lazily, one candidate at a time."""
    return not hasattr(objective, "score_many") or getattr(objective, "batched", None) is False


def _checked(value: Any) -> tuple[float | None, str | None]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None, f"objective returned {type(value).__name__}, not a number"
    return (value, None) if math.isfinite(value) else (None, f"objective returned {value}")


def _safe_score(objective, state) -> tuple[float | None, str | None]:
    try:
        return _checked(objective.score(state))
    except ProtocolError:
        raise  # a decision touched report data: the search stops, it is not a failed candidate
    except Exception as exc:  # noqa: BLE001 - a failing candidate is recorded, the search goes on
        return None, f"{type(exc).__name__}: {exc}"[:500]
