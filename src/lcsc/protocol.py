"""The evaluation protocol: which training seeds, noises and feature spaces may decide anything, and which only report.

- **Decision seeds** (training seeds 0, 1, 2) with their search noise (the training seed itself), validation noise
  (``+ VALIDATION_NOISE_OFFSET``) and *check* noise (``DECISION_NOISE_OFFSET + seed + i``): the only data on which
  defaults, hyper-parameters, objectives and rules are chosen. Benchmarks that judge generalisation judge it on
  check noise, never on report noise.
- **Report seeds** (training seeds 3, 4, 5) and **report noise** (``HELD_OUT_SEED_OFFSET + seed + i``, the demo's
  held-out noise, for every training seed): a number measured there never feeds back into a choice. A claim in the
  README cites report seeds.
- **Gradient noise** (``GRADIENT_NOISE_OFFSET + seed``): the gradient search's fresh noise, one generator whose
  draws continue from step to step; a family of its own, never the search, validation, check or report noise.
- **Decision spaces** (FD_digits, FD2, FD3) may be searched and used by rules; **report-only spaces** (FD4, a
  non-CNN architecture) are never used by a search, a grid, a benchmark rule or a default.

Decision code runs inside :func:`deciding`; there, drawing report noise (:func:`check_noise`, called by every
sampling run), building a report-only space (:func:`check_space`, called by ``feature_space``) or reading a report
seed (:func:`check_training_seed`) raises :class:`ProtocolError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from lcsc.errors import LCSCError

__all__ = ["DECISION_SEEDS", "REPORT_SEEDS", "DECISION_SPACES", "REPORT_SPACES", "DECISION_NOISE_OFFSET",
           "REPORT_NOISE_OFFSET", "VALIDATION_NOISE_OFFSET", "GRADIENT_NOISE_OFFSET", "NOISE_BLOCK", "gradient_noise_seed", "ProtocolError", "seed_role", "noise_role", "held_out_seeds",
           "split_by_role", "deciding", "decision_context", "check_noise", "check_space", "check_training_seed",
           "check_decision_jobs"]

DECISION_SEEDS: tuple[int, ...] = (0, 1, 2)
REPORT_SEEDS: tuple[int, ...] = (3, 4, 5, 10, 11)  # 10, 11: the distillation benchmark's (benchmarks/distillation.py)
DECISION_SPACES: tuple[str, ...] = ("digits", "digits2", "digits3")
REPORT_SPACES: tuple[str, ...] = ("digits4",)
REPORT_NOISE_OFFSET = 1_000_003  # the demo's held-out noise (lcsc.objectives.base.HELD_OUT_SEED_OFFSET)
VALIDATION_NOISE_OFFSET = 500_009  # validation noise: the search chooses among its best on it, never reports on it
DECISION_NOISE_OFFSET = 2_000_029  # check noise: benchmarks' held-out judgements on decision seeds
GRADIENT_NOISE_OFFSET = 3_000_017  # the gradient search's fresh noise (one stream per search seed)
NOISE_BLOCK = 100_000  # each noise family owns [offset, offset + NOISE_BLOCK) (modulo 2**32: the generator's seed bits)

_STACK: list[str] = []


class ProtocolError(LCSCError):
    """Decision code touched report data (a report seed, report noise or a report-only space)."""


def seed_role(seed: int) -> str:
    """"decision", "report", or "other" (a seed outside both sets: a user's own run)."""
    if seed in DECISION_SEEDS:
        return "decision"
    return "report" if seed in REPORT_SEEDS else "other"


def noise_role(noise_seed: int) -> str:
    """"report", "decision" (check noise), "validation", "gradient" or "search" for a sampling noise seed. PyTorch's CPU
    generator keeps a seed's low 32 bits, so seeds are compared modulo 2**32 (equal bits, equal noise)."""
    s = int(noise_seed) % 2**32
    for role, offset in (("report", REPORT_NOISE_OFFSET), ("decision", DECISION_NOISE_OFFSET),
                         ("validation", VALIDATION_NOISE_OFFSET), ("gradient", GRADIENT_NOISE_OFFSET)):
        if offset <= s < offset + NOISE_BLOCK:
            return role
    return "search"


def gradient_noise_seed(noise_seed: int, search_seed: int = 0) -> int:
    """The seed of the gradient search's fresh-noise stream for search noise seed ``noise_seed`` (taken modulo 1000)
    and gradient-search seed ``search_seed`` (0 … 99), in its own block: never a search, validation, check or report
    seed."""
    if not 0 <= int(search_seed) < NOISE_BLOCK // 1000:
        raise ValueError(f"search seed {search_seed}: the gradient noise family holds search seeds 0 … "
                         f"{NOISE_BLOCK // 1000 - 1}")
    return GRADIENT_NOISE_OFFSET + int(noise_seed) % 1000 + 1000 * int(search_seed)


def held_out_seeds(seed: int, count: int, role: str = "report") -> tuple[int, ...]:
    """``count`` held-out noise seeds of training seed ``seed``: report noise (the demo's held-out rows) or, with
    ``role="decision"``, check noise (benchmarks deciding on decision seeds)."""
    if role not in ("report", "decision"):
        raise ValueError(f"held-out noise role {role!r}: choose 'report' or 'decision'")
    offset = REPORT_NOISE_OFFSET if role == "report" else DECISION_NOISE_OFFSET
    if not 0 <= seed + count <= NOISE_BLOCK:
        raise ValueError(f"training seed {seed} with {count} noise seeds leaves the {role} noise block")
    return tuple(offset + seed + i for i in range(count))


def split_by_role(seeds: Iterable[int]) -> dict[str, list[int]]:
    """Seeds grouped by :func:`seed_role`, each group sorted."""
    out: dict[str, list[int]] = {"decision": [], "report": [], "other": []}
    for s in sorted(set(seeds)):
        out[seed_role(s)].append(s)
    return out


@contextlib.contextmanager
def deciding(what: str) -> Iterator[None]:
    """Mark the enclosed code as a decision (an EMA* grid, a search, a benchmark's rule): report data is refused."""
    _STACK.append(what)
    try:
        yield
    finally:
        _STACK.pop()


def decision_context() -> str | None:
    """The innermost :func:`deciding` label, or None outside decision code."""
    return _STACK[-1] if _STACK else None


def check_noise(noise_seed: int) -> None:
    """Inside :func:`deciding`: refuse report noise."""
    if _STACK and noise_role(noise_seed) == "report":
        raise ProtocolError(f"{_STACK[-1]}: draws report noise (seed {noise_seed}); decisions use search, validation "
                            f"or check noise (lcsc.protocol)")


def check_space(name: str) -> None:
    """Inside :func:`deciding`: refuse a report-only feature space."""
    if _STACK and name in REPORT_SPACES:
        raise ProtocolError(f"{_STACK[-1]}: builds the report-only feature space {name!r}; decisions use "
                            f"{', '.join(DECISION_SPACES)} (lcsc.protocol)")


def check_training_seed(seed: int, what: str | None = None) -> None:
    """Refuse a training seed that is not a decision seed (always, not only inside :func:`deciding`: call it where
    a rule reads its data)."""
    if seed_role(seed) != "decision":
        label = what or decision_context() or "a decision"
        raise ProtocolError(f"{label}: training seed {seed} is a {seed_role(seed)} seed; decisions use the decision "
                            f"seeds {', '.join(map(str, DECISION_SEEDS))} only (lcsc.protocol)")


def check_decision_jobs(jobs: Iterable[dict], what: str) -> None:
    """Refuse results a rule must not read: a job of a non-decision training seed, scored on anything but check
    noise (``held_out_noise`` must be "decision"), or carrying a report-only space."""
    for job in jobs:
        check_training_seed(int(job["train_seed"]), what)
        if job.get("held_out_noise") != "decision":
            raise ProtocolError(f"{what}: a result of seed {job['train_seed']} was scored on "
                                f"{job.get('held_out_noise', 'unrecorded')!r} noise; rules read check noise only")
        spaces = set(job.get("spaces", ()))
        if spaces & set(REPORT_SPACES):
            raise ProtocolError(f"{what}: a result carries the report-only space(s) {sorted(spaces & set(REPORT_SPACES))}")
