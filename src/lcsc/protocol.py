"""The evaluation protocol: which training seeds and noises may decide anything, and which only report.

Defaults, hyper-parameters, objectives and rules are chosen on the **decision seeds** (training seeds 0, 1, 2 with
their search and validation noises) only. The **report seeds** (training seeds 3, 4, 5) and every held-out noise
are for reporting: a number measured there never feeds back into a choice. A claim in the README cites report seeds.
"""

from __future__ import annotations

from lcsc.objectives.base import HELD_OUT_SEED_OFFSET

__all__ = ["DECISION_SEEDS", "REPORT_SEEDS", "DECISION_SPACES", "seed_role", "held_out_seeds", "split_by_role"]

DECISION_SEEDS: tuple[int, ...] = (0, 1, 2)
REPORT_SEEDS: tuple[int, ...] = (3, 4, 5)
DECISION_SPACES: tuple[str, ...] = ("digits", "digits2", "digits3")


def seed_role(seed: int) -> str:
    """"decision", "report", or "other" (a seed outside both sets: a user's own run)."""
    if seed in DECISION_SEEDS:
        return "decision"
    return "report" if seed in REPORT_SEEDS else "other"


def held_out_seeds(seed: int, count: int) -> tuple[int, ...]:
    """The held-out noise seeds of training seed ``seed``: ``count`` of them, far from every search and validation
    noise seed (``check_seed_separation`` in the demo compares them as noise)."""
    return tuple(HELD_OUT_SEED_OFFSET + seed + i for i in range(count))


def split_by_role(seeds) -> dict[str, list[int]]:
    """Seeds grouped by :func:`seed_role`, each group sorted."""
    out: dict[str, list[int]] = {"decision": [], "report": [], "other": []}
    for s in sorted(set(seeds)):
        out[seed_role(s)].append(s)
    return out
