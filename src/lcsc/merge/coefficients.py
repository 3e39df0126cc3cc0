"""The one coefficient file format: ``{"steps": [...], "coefficients": [...]}`` or per-group coefficients.

A stack with anchors (:mod:`lcsc.checkpoints.anchors`) adds ``"anchors": [{"name", "sha256", ...}, ...]`` after
``"steps"``; each coefficient vector then lists the window steps first, then the anchors, in that order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lcsc.atomic import write_json
from lcsc.errors import CoefficientError

__all__ = ["Coefficients", "SUM_TOLERANCE"]

SUM_TOLERANCE = 1e-6
_ANCHOR_FIELDS = {"name": str, "sha256": str, "spec": str, "source": str, "kind": str, "step": int,
                  "ema_rate": (int, float)}


class _Rows(Protocol):
    """What :meth:`Coefficients.check_rows` reads of a stack (a CheckpointStack)."""

    steps: list[int]
    anchors: list[Any]


@dataclass(frozen=True)
class Coefficients:
    """Coefficients over checkpoints at ``steps`` then ``anchors``: ``values`` has shape (G, K) with
    K = len(steps) + len(anchors); ``groups`` maps names to globs; each anchor is a JSON object with at least
    ``name`` and ``sha256`` (:meth:`lcsc.checkpoints.Anchor.to_json`)."""

    steps: tuple[int, ...]
    values: np.ndarray
    groups: dict[str, tuple[str, ...]] | None = None
    anchors: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim == 1:
            values = values[None, :]
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "anchors", _checked_anchors(self.anchors))
        G, K = 1 if self.groups is None else len(self.groups), len(self.steps) + len(self.anchors)
        if values.shape != (G, K):
            rows = f"{len(self.steps)} steps" + (f" + {len(self.anchors)} anchors" if self.anchors else "")
            raise CoefficientError(f"coefficients have shape {values.shape}, expected ({G}, {K}) for {rows}")
        if not np.isfinite(values).all():
            raise CoefficientError("coefficients contain NaN or Inf")
        if len(set(self.steps)) != len(self.steps):
            raise CoefficientError(f"steps contain duplicates: {list(self.steps)}")

    @property
    def group_names(self) -> tuple[str, ...]:
        return ("all",) if self.groups is None else tuple(self.groups)

    def sums(self) -> np.ndarray:
        return self.values.sum(axis=1)

    def check_sum(self, source: str = "coefficients") -> None:
        """Raise unless every group's coefficients sum to 1 within 1e-6."""
        for name, total in zip(self.group_names, self.sums()):
            if abs(total - 1.0) > SUM_TOLERANCE:
                raise CoefficientError(
                    f"{source}: coefficients of group {name!r} sum to {total:.9g}, not 1 (use --renormalize to divide by the sum)"
                )

    def renormalized(self) -> Coefficients:
        """Each group divided by its sum (an error when a sum is ~0)."""
        sums = self.sums()
        for name, total in zip(self.group_names, sums):
            if abs(total) < 1e-8:
                raise CoefficientError(f"group {name!r} sums to {total:.3g}; cannot renormalise")
        return Coefficients(self.steps, self.values / sums[:, None], self.groups, self.anchors)

    def check_steps(self, steps: list[int], source: str = "coefficients") -> None:
        """Raise unless these coefficients refer to exactly ``steps`` in that order."""
        if list(self.steps) != list(steps):
            only_file = sorted(set(self.steps) - set(steps))[:5]
            only_dir = sorted(set(steps) - set(self.steps))[:5]
            raise CoefficientError(
                f"{source}: steps do not match the checkpoints ({len(self.steps)} in file, {len(steps)} checkpoints; "
                f"only in file: {only_file}; only in checkpoints: {only_dir})"
            )

    @property
    def anchor_names(self) -> list[str]:
        return [a["name"] for a in self.anchors]

    def check_rows(self, stack: _Rows, source: str = "coefficients") -> None:
        """Raise unless these coefficients refer to exactly the stack's window steps, then exactly its anchors
        (same names, same order, same content hashes); the error names the first anchor that differs."""
        self.check_steps(stack.steps, source)
        mine, theirs = self.anchor_names, [a.name for a in stack.anchors]
        if mine and not theirs:
            specs = " ".join(f"--anchor {a.get('spec') or a['name']}" for a in self.anchors)
            raise CoefficientError(f"{source} names anchors {mine} but the stack has none; pass {specs}")
        if theirs and not mine:
            raise CoefficientError(f"{source} names no anchors but the stack has anchors {theirs}; drop --anchor or "
                                   "use coefficients searched with these anchors")
        for i, (a, b) in enumerate(zip(self.anchors, stack.anchors)):
            if a["name"] != b.name:
                raise CoefficientError(f"{source}: anchor {i + 1} is {a['name']!r} but the stack's anchor {i + 1} is "
                                       f"{b.name!r} (file: {mine}; stack: {theirs}); give the anchors in the file's order")
            if a["sha256"] != b.sha256:
                raise CoefficientError(f"anchor {a['name']!r} in {source} has sha256 {a['sha256'][:12]}… but the "
                                       f"stack's has {b.sha256[:12]}… ({b.source}); the anchor's weights changed")
        if len(mine) != len(theirs):
            raise CoefficientError(f"{source} names anchors {mine} but the stack has anchors {theirs}")

    def to_json(self) -> dict[str, Any]:
        head: dict[str, Any] = {"steps": list(self.steps)}
        if self.anchors:
            head["anchors"] = [dict(a) for a in self.anchors]
        if self.groups is None:
            return {**head, "coefficients": self.values[0].tolist()}
        return {
            **head,
            "groups": {k: list(v) for k, v in self.groups.items()},
            "coefficients": {k: self.values[g].tolist() for g, k in enumerate(self.groups)},
        }

    def save(self, path: str | Path) -> Path:
        """Write the JSON file atomically."""
        return write_json(path, self.to_json())

    @classmethod
    def from_json(cls, obj: Any, source: str = "coefficients") -> Coefficients:
        if not isinstance(obj, dict) or "steps" not in obj or "coefficients" not in obj:
            raise CoefficientError(f"{source}: expected a JSON object with 'steps' and 'coefficients'")
        steps = obj["steps"]
        if not isinstance(steps, list) or not all(isinstance(s, int) for s in steps):
            raise CoefficientError(f"{source}: 'steps' must be a list of integers")
        coeffs, groups = obj["coefficients"], obj.get("groups")
        try:
            if groups is None:
                values = np.asarray([_numbers(coeffs, source)], dtype=np.float64)
            else:
                if not isinstance(groups, dict) or not isinstance(coeffs, dict) or set(groups) != set(coeffs):
                    raise CoefficientError(
                        f"{source}: 'groups' and 'coefficients' must be objects with the same names"
                    )
                groups = {k: tuple(v) for k, v in groups.items()}
                values = np.asarray([_numbers(coeffs[k], source) for k in groups], dtype=np.float64)
            return cls(tuple(steps), values, groups, obj.get("anchors", ()))
        except CoefficientError as exc:
            raise CoefficientError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path, *, renormalize: bool = False) -> Coefficients:
        """Read and validate a coefficient file; Σa = 1 per group is checked unless ``renormalize``."""
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            raise CoefficientError(f"{path}: no such coefficient file") from None
        except OSError as exc:  # a folder, no permission, …
            raise CoefficientError(f"{path}: cannot read the coefficient file ({exc.strerror or exc})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CoefficientError(f"{path}: not valid JSON ({exc})") from None
        coeffs = cls.from_json(obj, source=str(path))
        if renormalize:
            return coeffs.renormalized()
        coeffs.check_sum(str(path))
        return coeffs


def _checked_anchors(anchors: Any) -> tuple[dict[str, Any], ...]:
    """Anchor records as a tuple of dicts: each an object with string ``name`` and ``sha256`` (other known fields
    typed), names unique."""
    if not isinstance(anchors, (list, tuple)):
        raise CoefficientError("'anchors' must be a list of objects with 'name' and 'sha256'")
    out, names = [], set()
    for a in anchors:
        if not isinstance(a, dict) or not isinstance(a.get("name"), str) or not isinstance(a.get("sha256"), str):
            raise CoefficientError(f"anchor {a!r}: expected an object with string 'name' and 'sha256'")
        for key, kind in _ANCHOR_FIELDS.items():
            if a.get(key) is not None and (not isinstance(a[key], kind) or isinstance(a[key], bool)):
                raise CoefficientError(f"anchor {a['name']!r}: field {key!r} has the wrong type ({a[key]!r})")
        if a["name"] in names:
            raise CoefficientError(f"anchor name {a['name']!r} appears twice")
        names.add(a["name"])
        out.append(dict(a))
    return tuple(out)


def _numbers(values: Any, source: str) -> list[float]:
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise CoefficientError("coefficients must be a list of numbers")
    if not all(math.isfinite(v) for v in values):
        raise CoefficientError("coefficients contain NaN or Inf")
    return [float(v) for v in values]
