"""The search's stage names and its one rule for "best": the best full-count score (racing scores never select),
the earliest on ties; ``direction_sign(direction) * score`` is the loss that is minimised."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from lcsc.objectives.base import direction_sign

__all__ = ["FULL", "RACE", "Scored", "ranked_full", "best_full", "best_full_record"]

FULL, RACE = "full", "race"  # the journal's stages: a racing (fewer samples) and the full-count score


class Scored(Protocol):
    """What ranking needs of a candidate: its index and its scores by stage (None: failed)."""

    index: int
    scores: dict[str, float | None]


def ranked_full(candidates: Iterable[Scored], direction: str) -> list[Any]:
    """The candidates with a full-count score, best first (the lower index first on ties)."""
    sign = direction_sign(direction)
    return sorted((c for c in candidates if c.scores.get(FULL) is not None),
                  key=lambda c: (sign * c.scores[FULL], c.index))


def best_full(candidates: Iterable[Scored], direction: str) -> Any | None:
    """The candidate with the best full-count score (the lowest index on ties), or None when none has one."""
    sign = direction_sign(direction)
    scored = [c for c in candidates if c.scores.get(FULL) is not None]
    return min(scored, key=lambda c: (sign * c.scores[FULL], c.index)) if scored else None


def best_full_record(records: Iterable[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    """The journal record with the best full-count score (failed ones have none; the earliest on ties), or None."""
    sign = direction_sign(direction)
    scored = [r for r in records if r.get("stage", FULL) == FULL and r.get("status") != "failed"
              and r.get("score") is not None]
    return min(scored, key=lambda r: (sign * r["score"], r.get("index", 0))) if scored else None
