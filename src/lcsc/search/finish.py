# LCSC paper Sec. 4 (Algorithm 1 returns the best on the search noise); the guards against fitting that noise are ours.
"""The end of a search: the finalists re-scored on validation noise (the best anchor always among them), shrinkage
toward the best anchor, and the best initial individual / anchor of a journal."""

from __future__ import annotations

from typing import Any

import numpy as np

from lcsc.objectives.base import direction_sign
from lcsc.search.basis import CoefficientSpace
from lcsc.search.evaluator import FULL, Evaluator, _safe_score, coefficient_hash
from lcsc.search.hyperplane import exact_sum_to_one
from lcsc.search.ranking import best_full, ranked_full

__all__ = ["ANCHOR_PREFIX", "revalidate", "shrink", "best_anchor", "best_initial", "top_distinct"]

ANCHOR_PREFIX = "anchor "  # initial individuals that are one anchor alone


def top_distinct(ev: Evaluator, k: int) -> list:
    top: dict[str, Any] = {}
    for c in ranked_full(ev.candidates, ev.direction):
        top.setdefault(c.hash, c)
        if len(top) == k:
            break
    return list(top.values())


def revalidate(ev: Evaluator, objective: Any, k: int) -> dict[str, Any] | None:
    """Re-score the k best distinct full-count individuals and the best anchor (a finalist whatever its rank) on the
    objective's validation noise; the best there is exported, the anchor itself when nothing beats it. Journalled (a
    resumed run reuses the record for the same shortlist). Every validation score failing falls back, visibly, to
    the best on the search noise (``picked`` None, ``fallback`` says why)."""
    top, anchor = top_distinct(ev, k), best_anchor(ev)
    if anchor is not None and anchor.hash not in {c.hash for c in top}:
        top.append(anchor)
    if not top:
        return None
    hashes = [c.hash for c in top]
    saved = next((m for m in ev.journal.meta if m["type"] == "revalidation" and m["hashes"] == hashes), None)
    if saved is not None:
        return saved
    val = objective.validation()
    states = ev.merger.merge_many(np.stack([c.a for c in top]))
    scores = [_checked_score(val, s) for s in states]
    sign = direction_sign(ev.direction)
    valid = [i for i, v in enumerate(scores) if v is not None]
    pick = min(valid, key=lambda i: (sign * scores[i], i)) if valid else None
    n = getattr(val, "num_samples", None)
    record = {"hashes": hashes, "candidates": [c.index for c in top], "scores": scores, "picked": pick,
              "validation_seed": getattr(val, "noise_seed", None), "samples": (n or 0) * len(top),
              "anchor": None if anchor is None else {"candidate": anchor.index, "name": anchor.name},
              "exported_anchor": anchor is not None and pick is not None and top[pick].hash == anchor.hash,
              "fallback": None if valid else "every validation score failed; exported the best on the search noise"}
    ev.journal.append_meta("revalidation", record)
    return {"type": "revalidation", **record}


def _checked_score(objective: Any, state) -> float | None:
    return _safe_score(objective, state)[0]


def shrink(ev: Evaluator, space: CoefficientSpace, objective: Any, result: Any, lam: float) -> None:
    """Export w = w₀ + λ(w* − w₀): part of the way from w₀ — the best anchor when there are anchors, else the best
    initial individual — to the best one (shrinkage against fitting the search noise). Scored once on the search
    noise for the record (journalled; a resume reuses it); ``result`` is updated in place and keeps the unshrunk best
    in ``result.shrink``. A shrunk point that fails to score is not exported: the scored best stays, and the card
    says so."""
    best, first = ev.candidates[result.best_index], best_anchor(ev) or best_initial(ev)
    if first is None:
        return
    w = exact_sum_to_one(first.w.reshape(space.G, space.D) + lam * (best.w.reshape(space.G, space.D) -
                                                                     first.w.reshape(space.G, space.D)))
    a = space.to_coefficients(w)
    h = coefficient_hash(a)
    saved = next((m for m in ev.journal.meta if m["type"] == "shrink" and m["hash"] == h), None)
    if saved is None:
        n = getattr(objective, "num_samples", None) or 0
        saved = {"hash": h, "lambda": lam, "from_index": best.index, "from_score": best.scores[FULL],
                 "toward": first.name, "toward_index": first.index,
                 "score": _checked_score(objective, ev.merger.merge_many(a[None])[0]), "samples": n}
        ev.journal.append_meta("shrink", saved)
    result.samples += saved["samples"]
    result.shrink = {k: v for k, v in saved.items() if k != "type"} | {"unshrunk": np.asarray(best.a).tolist()}
    if saved["score"] is None:
        result.shrink["exported"] = "the unshrunk best: the shrunk point failed to score"
        return
    result.shrink["exported"] = "the shrunk point"
    result.best, result.best_w, result.best_score = a, w, saved["score"]
    result.best_name = f"shrunk λ={lam:g} toward {first.name}"


def best_anchor(ev: Evaluator):
    """The best scored anchor-alone initial individual, or None (no anchors)."""
    return best_full((c for c in ev.candidates if c.generation == 0 and (c.name or "").startswith(ANCHOR_PREFIX)),
                     ev.direction)


def best_initial(ev: Evaluator):
    """The best scored initial individual (generation 0), or None."""
    return best_full((c for c in ev.candidates if c.generation == 0), ev.direction)
