# The LCSC paper's headlines (Liu et al. 2024, Sec. 5.1 Tables 6–8 / Fig. 1: training cost; Sec. 5.2: NFE).
"""Where an EMA* curve first reaches LCSC's quality — in training iterations or in NFE — in every feature space.

A curve is ``xs`` (training iterations or NFEs, increasing) against held-out FD ``ys`` (lower is better). The
crossing is the first ``x`` at which the curve reaches ``target``, linearly interpolated between the two points that
bracket it; ``None`` if it never does ("> end"). A headline is claimed only when it holds in every space: FD_digits,
FD2, FD3, and the report-only FD4 wherever the rows have it (:func:`lcsc.spaces.spaces_in`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lcsc.spaces import spaces_in

__all__ = ["Crossing", "crossing", "speedup", "nfe_match", "holds_everywhere"]


@dataclass(frozen=True)
class Crossing:
    """``x``: the interpolated crossing (``None``: never within the curve); ``at_start``: reached already at the
    curve's first point, so ``x`` is only an upper bound."""

    x: float | None
    at_start: bool = False

    def label(self, end: float) -> str:
        if self.x is None:
            return f"> {end:g}"
        return f"≤ {self.x:g}" if self.at_start else f"{self.x:.0f}" if self.x >= 100 else f"{self.x:.1f}"


def crossing(xs: list[float], ys: list[float], target: float) -> Crossing:
    """First ``x`` where the piecewise-linear curve (xs, ys) reaches ``ys <= target``."""
    if len(xs) != len(ys) or not xs:
        raise ValueError("a curve needs as many values as points, and at least one")
    if ys[0] <= target:
        return Crossing(float(xs[0]), at_start=True)
    for i in range(1, len(xs)):
        if ys[i] <= target:
            x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
            return Crossing(float(x0 + (y0 - target) / (y0 - y1) * (x1 - x0)))
    return Crossing(None)


def speedup(points: list[int], curve: list[dict[str, Any]], lcsc: dict[str, Any], point: int,
            search_iters: float) -> dict[str, Any]:
    """Training-cost speed-up of LCSC at ``point`` against the EMA* ``curve`` (held-out rows at ``points``), per
    space: crossing iteration ÷ ``point``, and ÷ (``point`` + the search's wall time in training iterations).

    ``speedup_iters`` / ``speedup_with_search`` are the minimum over spaces (what holds in all of them); a space
    where EMA* never gets there contributes the lower bound ``points[-1] / point`` (``lower_bound`` is then True
    when that bound is the minimum)."""
    by_space, with_search, crossings = {}, {}, {}
    end, keys = float(points[-1]), spaces_in(lcsc, *curve)
    for key in keys:
        c = crossing([float(p) for p in points], [float(r[key]) for r in curve], float(lcsc[key]))
        x = end if c.x is None else c.x
        by_space[key], with_search[key] = x / point, x / (point + search_iters)
        crossings[key] = {"iteration": c.x, "label": c.label(end), "at_start": c.at_start, "never": c.x is None}
    worst = min(keys, key=lambda k: by_space[k])
    return {"speedup_iters": by_space[worst], "speedup_with_search": min(with_search.values()),
            "lower_bound": crossings[worst]["never"], "claimed": all(v > 1.0 for v in by_space.values()),
            "by_space": by_space, "with_search_by_space": with_search, "crossings": crossings}


def nfe_match(nfes: list[int], curve: list[dict[str, Any]], lcsc: dict[str, Any], lcsc_nfe: int) -> dict[str, Any]:
    """The NFE at which EMA* first matches LCSC at ``lcsc_nfe`` (per space; ``ema_star_nfe`` is the minimum over
    spaces, a string "> N" when EMA* never gets there within ``nfes``); claimed when it is at least the next NFE of
    the list everywhere (a reduction of at least one step of the list, e.g. LCSC at 1 step ≤ EMA* at 2)."""
    keys = spaces_in(lcsc, *curve)
    per = {k: crossing([float(n) for n in nfes], [float(r[k]) for r in curve], float(lcsc[k])) for k in keys}
    xs = {k: (float("inf") if c.x is None else c.x) for k, c in per.items()}
    worst = min(keys, key=lambda k: xs[k])
    m = per[worst]
    value: float | str = f"> {nfes[-1]}" if m.x is None else round(m.x, 2)
    bigger = [n for n in nfes if n > lcsc_nfe]
    need = bigger[0] if bigger else float("inf")
    return {"lcsc_nfe": lcsc_nfe, "ema_star_nfe": value, "claimed": all(x >= need for x in xs.values()),
            "by_space": {k: c.label(nfes[-1]) for k, c in per.items()}}


def holds_everywhere(lcsc: dict[str, Any], base: dict[str, Any]) -> bool:
    """LCSC's held-out FD is lower than ``base``'s in every space (FD4 too where both have it)."""
    return all(lcsc[k] < base[k] for k in spaces_in(lcsc, base))
