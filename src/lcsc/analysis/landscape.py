# LCSC paper (Liu et al.), Fig. 3: the FID landscape of the plane through three coefficient vectors (checkpoints/merges).
"""The score landscape of the plane a(u, v) = (1 − u − v)·a0 + u·a1 + v·a2 through three anchor coefficient vectors.

Every point of the plane sums to 1 (the anchors do). The grid includes the anchors exactly ((u, v) ∈ {(0, 0), (1, 0),
(0, 1)}) whenever the range covers 0 and 1, so the landscape there equals a direct score of the anchors. A point from
an anchored search (or a coefficient file naming anchors) weighs EMA weights beside the window: the merger's stack
then carries those anchors as rows after the window (``point_anchors`` lists them; the CLI adds them), every other
point puts 0 on them, and the plane stays a plane of full merged states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lcsc.errors import ConfigError  # noqa: E402
from lcsc.merge import Coefficients  # noqa: E402
from lcsc.search import ema_coefficients, exported_coefficients, half_life_to_rate  # noqa: E402
from lcsc.search.runner import anchors_of  # noqa: E402

__all__ = ["Anchor", "Landscape", "parse_points", "resolve_point", "grid_axis", "plane", "compute_landscape",
           "plot_landscape", "landscape_markdown", "default_points", "search_best", "point_anchors"]

ANCHOR_UV = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))


@dataclass
class Anchor:
    """One anchor point: its name, the spec it came from, its coefficients, plane position and scores."""

    name: str
    spec: str
    coefficients: np.ndarray
    uv: tuple[float, float]
    score: float | None = None  # the landscape's value at uv (None when uv is off the grid)
    direct_score: float | None = None  # a direct objective.score of the anchor's own merge

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec, "coefficients": self.coefficients.tolist(), "uv": list(self.uv),
                "score": self.score, "direct_score": self.direct_score}


@dataclass
class Landscape:
    """Scores on the (u, v) grid: ``values[j][i]`` is the score at (u[i], v[j])."""

    u: np.ndarray
    v: np.ndarray
    values: np.ndarray
    anchors: list[Anchor]
    steps: list[int]
    objective: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def minimum(self) -> dict[str, float]:
        """The grid minimum (u, v, score); non-finite scores are ignored."""
        vals = np.where(np.isfinite(self.values), self.values, np.inf)
        j, i = np.unravel_index(int(np.argmin(vals)), vals.shape)
        return {"u": float(self.u[i]), "v": float(self.v[j]), "score": float(self.values[j, i])}

    def to_json(self) -> dict[str, Any]:
        vals = [[v if np.isfinite(v) else None for v in row] for row in self.values.tolist()]
        return {"objective": self.objective, "u": self.u.tolist(), "v": self.v.tolist(), "values": vals,
                "values_index": "values[j][i] is the score at (u[i], v[j])", "steps": self.steps,
                "anchors": [a.to_json() for a in self.anchors], "minimum": self.minimum, **self.info}


def parse_points(text: str | None) -> list[tuple[str, str]]:
    """``name=SPEC,name=SPEC,name=SPEC`` (a bare SPEC is named by itself) → three (name, spec) pairs."""
    if text is None:
        return []
    items = [t.strip() for t in text.split(",") if t.strip()]
    pairs = [(t.partition("=")[0].strip(), t.partition("=")[2].strip()) if "=" in t else (t, t) for t in items]
    if len(pairs) != 3 or any(not n or not s for n, s in pairs):
        raise ConfigError(f"--points {text!r}: expected three anchors NAME=SPEC separated by commas "
                          "(SPEC: a coefficient JSON file, a search folder or journal, last, uniform or ema:H)")
    if len({n for n, _ in pairs}) != 3:
        raise ConfigError(f"--points {text!r}: the three anchor names must differ")
    return pairs


def default_points(steps: list[int]) -> list[tuple[str, str]]:
    """last, uniform and an EMA with half-life a quarter of the window (rounded to whole intervals)."""
    interval = _interval(steps)
    window = interval * len(steps)
    return [("last", "last"), ("uniform", "uniform"), ("ema", f"ema:{max(interval, round(window / 4 / interval) * interval)}")]


def _interval(steps: list[int]) -> int:
    gaps = np.diff(steps)
    return int(gaps.min()) if len(gaps) else 1


def search_best(path: Path, steps: list[int], anchors: Sequence[str] = ()) -> np.ndarray:
    """The coefficients a search exports (:func:`lcsc.search.exported_coefficients`: plain, anchored or gradient;
    a folder or its ``journal.jsonl``) over ``steps`` then the rows ``anchors`` (the merger's anchor names): the
    search's anchors go to their rows by name, other rows get 0."""
    ex = exported_coefficients(path)
    if list(ex.steps) != list(steps):
        raise ConfigError(f"{ex.folder}: the search's steps ({ex.K_window} checkpoints) do not match the window's "
                          f"{len(steps)} checkpoints (steps {steps[:3]}…)")
    if ex.coefficients.shape[0] != 1:
        raise ConfigError(f"{ex.folder}: a per-group search (G={ex.coefficients.shape[0]}); the landscape needs one "
                          "coefficient vector")
    return _on_rows(ex.window[0], dict(zip(ex.anchor_names, ex.anchor_part[0])), anchors, str(ex.folder))


def _on_rows(window: np.ndarray, weights: dict[str, float], anchors: Sequence[str], source: str) -> np.ndarray:
    """Window coefficients then one per anchor row (``weights`` by name; refused when a name has no row)."""
    missing = [n for n in weights if n not in anchors]
    if missing:
        raise ConfigError(f"{source}: its anchors {missing} are not rows of the landscape's stack (rows after the "
                          f"window: {list(anchors) or 'none'}); open the window with these anchors")
    return np.concatenate([np.asarray(window, dtype=np.float64), [float(weights.get(n, 0.0)) for n in anchors]])


def point_anchors(points: list[tuple[str, str]]) -> list[tuple[dict[str, Any], str]]:
    """The anchors (records with ``name``, ``sha256`` and ``spec``) that the points' searches and coefficient files
    weigh, each once in first-seen order with the point it came from; an anchor name standing for two different
    weights, or one without a recorded spec, is refused."""
    out: dict[str, tuple[dict[str, Any], str]] = {}
    for _, spec in points:
        path = Path(spec)
        if path.is_dir() or path.name.endswith(".jsonl"):
            records = exported_coefficients(path).anchors
        elif path.is_file() and path.suffix == ".json":
            records = Coefficients.load(path, renormalize=True).anchors
        else:
            continue
        for rec in records:
            seen = out.get(rec["name"])
            if seen is not None and seen[0]["sha256"] != rec["sha256"]:
                raise ConfigError(f"anchor {rec['name']!r}: {seen[1]} and {spec} weigh different weights under this "
                                  "name; give points searched with the same anchors")
            if not rec.get("spec"):
                raise ConfigError(f"{spec}: anchor {rec['name']!r} has no recorded spec (no provenance.json beside "
                                  "the journal), so the landscape cannot rebuild its row")
            out.setdefault(rec["name"], (dict(rec), spec))
    return list(out.values())


def resolve_point(spec: str, steps: list[int], anchors: Sequence[str] = ()) -> np.ndarray:
    """Coefficients (K_window + len(anchors),) for ``spec``: last, uniform, ema:H, a coefficient JSON file, or a
    search folder/journal (its export); ``anchors`` names the stack's rows after the window (0 unless weighed)."""
    K, low = len(steps), spec.strip().lower()
    if low == "last":
        return _on_rows(np.eye(K)[-1], {}, anchors, spec)
    if low == "uniform":
        return _on_rows(np.full(K, 1.0 / K), {}, anchors, spec)
    if low.startswith("ema:"):
        try:
            half_life = float(low[4:])
        except ValueError:
            raise ConfigError(f"point {spec!r}: expected ema:H with H a half-life in iterations") from None
        if not half_life > 0:
            raise ConfigError(f"point {spec!r}: the EMA half-life must be > 0 iterations")
        interval = _interval(steps)
        return _on_rows(ema_coefficients(K, half_life_to_rate(half_life), interval), {}, anchors, spec)
    path = Path(spec)
    if path.is_dir() or path.name.endswith(".jsonl"):
        return search_best(path, steps, anchors)
    if not path.exists():
        raise ConfigError(f"point {spec!r}: not last, uniform, ema:H, a coefficient file or a search folder")
    coeffs = Coefficients.load(path, renormalize=True)
    coeffs.check_steps(steps, str(path))
    if coeffs.values.shape[0] != 1:
        raise ConfigError(f"{path}: per-group coefficients; the landscape needs one coefficient vector")
    K_w = len(steps)
    return _on_rows(coeffs.values[0][:K_w], dict(zip(coeffs.anchor_names, coeffs.values[0][K_w:])), anchors,
                    str(path))


def grid_axis(lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` evenly spaced values on [lo, hi], with 0 and 1 exact (values within 1e-9 snapped) and inserted when
    the range covers them but the spacing misses them."""
    if n < 2:
        raise ConfigError(f"grid size {n}: needs at least 2 points per axis")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ConfigError(f"--range {lo}:{hi}: needs finite LO < HI")
    axis = np.linspace(lo, hi, n)
    for t in (0.0, 1.0):
        if lo - 1e-9 <= t <= hi + 1e-9:
            near = np.abs(axis - t) < 1e-9
            axis = np.where(near, t, axis) if near.any() else np.sort(np.append(axis, t))
    return axis


def plane(anchors: np.ndarray, u: np.ndarray, v: float) -> np.ndarray:
    """Rows (1 − u − v)·a0 + u·a1 + v·a2 for every u (exactly the anchors at (0,0), (1,0), (0,1))."""
    u = np.asarray(u, dtype=np.float64)[:, None]
    return (1.0 - u - v) * anchors[0] + u * anchors[1] + v * anchors[2]


def compute_landscape(merger: Any, objective: Any, points: list[tuple[str, str]], *, size: int = 11,
                      lo: float = -0.6, hi: float = 1.4, progress: bool = True) -> Landscape:
    """Score the plane through the three ``points`` on a size×size grid over [lo, hi]² (one row merged at once
    with ``merger.merge_many`` and scored with ``objective.score_many``), and score the anchors directly."""
    steps = list(merger.steps)
    if getattr(merger, "G", 1) != 1:
        raise ConfigError("the landscape needs a single coefficient group (no --groups)")
    if len(points) != 3:
        raise ConfigError(f"the landscape needs three anchor points, got {len(points)}")
    axis = grid_axis(lo, hi, size)
    extra = [a["name"] for a in anchors_of(merger)]  # the stack's anchor rows (EMA weights after the window)
    anchors = [Anchor(n, s, resolve_point(s, steps, extra), uv) for (n, s), uv in zip(points, ANCHOR_UV)]
    A = np.stack([a.coefficients for a in anchors])
    values = np.full((len(axis), len(axis)), np.nan)
    for j, v in enumerate(tqdm(axis, desc="landscape rows", disable=not progress)):
        rows = plane(A, axis, float(v))
        values[j] = objective.score_many(merger.merge_many(rows[:, None, :]))
    for a in anchors:
        a.direct_score = float(objective.score(merger.merge_many(a.coefficients[None, None, :])[0]))
        hit = [(j, i) for j in range(len(axis)) for i in range(len(axis)) if (axis[i], axis[j]) == a.uv]
        a.score = float(values[hit[0]]) if hit else None
    name = getattr(objective, "name", type(objective).__name__)
    return Landscape(axis.copy(), axis.copy(), values, anchors, steps, str(name),
                     {"range": [lo, hi], "size": size, "anchor_rows": extra})


def plot_landscape(land: Landscape) -> Any:
    """Filled contours of the score over the (u, v) plane, the anchor triangle, anchors and the minimum marked."""
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    vals = np.where(np.isfinite(land.values), land.values, np.nan)
    shown = np.log10(np.clip(vals, 1e-12, None))
    cs = ax.contourf(land.u, land.v, shown, levels=20, cmap="viridis")
    ax.contour(land.u, land.v, shown, levels=10, colors="white", linewidths=0.4, alpha=0.6)
    fig.colorbar(cs, ax=ax, label=f"log10 {land.objective}")
    tri = np.array([a.uv for a in land.anchors] + [land.anchors[0].uv])
    ax.plot(tri[:, 0], tri[:, 1], "w--", lw=0.8)
    for a in land.anchors:
        label = a.name if a.score is None else f"{a.name} ({a.score:.4g})"
        ax.plot(*a.uv, "o", color="white", mec="black", ms=7)
        ax.annotate(label, a.uv, textcoords="offset points", xytext=(6, 6), color="white", fontsize=9,
                    bbox=dict(boxstyle="round,pad=0.2", fc="black", alpha=0.5, lw=0))
    m = land.minimum
    ax.plot(m["u"], m["v"], "*", color="red", mec="black", ms=14)
    ax.annotate(f"min {m['score']:.4g}", (m["u"], m["v"]), textcoords="offset points", xytext=(6, -12),
                color="red", fontsize=9, bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.7, lw=0))
    names = [a.name for a in land.anchors]
    ax.set_xlabel(f"u (towards {names[1]})")
    ax.set_ylabel(f"v (towards {names[2]})")
    ax.set_title(f"{land.objective} on a(u,v) = (1-u-v)·{names[0]} + u·{names[1]} + v·{names[2]}", fontsize=9)
    fig.tight_layout()
    return fig


def landscape_markdown(land: Landscape) -> str:
    """One paragraph: the grid, the anchors' scores and where the minimum lies relative to them."""
    m, lo, hi = land.minimum, float(land.u[0]), float(land.u[-1])
    parts = [f"{a.name} {a.score:.4g} at (u, v) = ({a.uv[0]:g}, {a.uv[1]:g})" if a.score is not None
             else f"{a.name} {a.direct_score:.4g} (off the grid)" for a in land.anchors]
    best = min((a for a in land.anchors if a.direct_score is not None), key=lambda a: a.direct_score)
    nearest = min(land.anchors, key=lambda a: np.hypot(m["u"] - a.uv[0], m["v"] - a.uv[1]))
    inside = m["u"] >= 0 and m["v"] >= 0 and m["u"] + m["v"] <= 1
    rel = 100 * (best.direct_score - m["score"]) / best.direct_score if best.direct_score else float("nan")
    return (f"**Landscape (LCSC Fig. 3).** {land.objective} on a {len(land.u)}×{len(land.v)} grid over u, v ∈ "
            f"[{lo:g}, {hi:g}] of the plane a(u, v) = (1 − u − v)·{land.anchors[0].name} + u·{land.anchors[1].name}"
            f" + v·{land.anchors[2].name} (coefficients sum to 1 everywhere). Anchors: {'; '.join(parts)}. The grid "
            f"minimum is {m['score']:.4g} at (u, v) = ({m['u']:.3g}, {m['v']:.3g}), "
            f"{'inside' if inside else 'outside'} the anchor triangle and nearest to {nearest.name}; the best anchor "
            f"({best.name}, {best.direct_score:.4g}) is {rel:+.1f} % above it"
            f"{' (the minimum is that anchor)' if abs(rel) < 1e-9 else ''}.{_rows_note(land)}")


def _rows_note(land: Landscape) -> str:
    """A sentence on the stack's anchor rows (EMA weights after the window), when a point weighs them."""
    rows = land.info.get("anchor_rows") or []
    return (f" The stack carries the anchors {', '.join(rows)} as rows after the window's {len(land.steps)} "
            "checkpoints (an anchored search's export weighs them; the other points put 0 on them).") if rows else ""
