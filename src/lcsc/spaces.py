"""The feature spaces' keys in held-out result rows (held-out FD means) and their names in reports.

FD_digits, FD2 and FD3 are the decision spaces; FD4 (a ViT) is report-only (:mod:`lcsc.protocol`): in reports,
never in a rule. A foundation module, so that reports, experiments and analyses all read the same keys.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SPACES", "REPORT_ONLY", "ALL_SPACES", "SPACE_NAMES", "spaces_in"]

SPACES = ("fd_mean", "fd2_mean", "fd3_mean")  # the decision spaces FD_digits, FD2, FD3 (held-out means): rules use these
REPORT_ONLY = ("fd4_mean",)  # FD4 (ViT), report-only (lcsc.protocol): in reports, never in a rule
ALL_SPACES = SPACES + REPORT_ONLY
SPACE_NAMES = {"fd_mean": "FD_digits", "fd2_mean": "FD2", "fd3_mean": "FD3", "fd4_mean": "FD4"}


def spaces_in(*rows: dict[str, Any]) -> tuple[str, ...]:
    """The decision spaces, and FD4 where every row has a finite value (rows scored on report noise)."""
    def finite(r: dict[str, Any], k: str) -> bool:
        v = r.get(k)
        return isinstance(v, (int, float)) and v == v and abs(v) != float("inf")
    return SPACES + tuple(k for k in REPORT_ONLY if rows and all(finite(r, k) for r in rows))
