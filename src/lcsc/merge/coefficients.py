"""The one coefficient file format: ``{"steps": [...], "coefficients": [...]}`` or per-group coefficients."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.atomic import write_json
from lcsc.errors import CoefficientError

__all__ = ["Coefficients", "SUM_TOLERANCE"]

SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Coefficients:
    """Coefficients over checkpoints at ``steps``: ``values`` has shape (G, K); ``groups`` maps names to globs."""

    steps: tuple[int, ...]
    values: np.ndarray
    groups: dict[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim == 1:
            values = values[None, :]
        object.__setattr__(self, "values", values)
        G = 1 if self.groups is None else len(self.groups)
        if values.shape != (G, len(self.steps)):
            raise CoefficientError(
                f"coefficients have shape {values.shape}, expected ({G}, {len(self.steps)}) for {len(self.steps)} steps"
            )
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
        return Coefficients(self.steps, self.values / sums[:, None], self.groups)

    def check_steps(self, steps: list[int], source: str = "coefficients") -> None:
        """Raise unless these coefficients refer to exactly ``steps`` in that order."""
        if list(self.steps) != list(steps):
            only_file = sorted(set(self.steps) - set(steps))[:5]
            only_dir = sorted(set(steps) - set(self.steps))[:5]
            raise CoefficientError(
                f"{source}: steps do not match the checkpoints ({len(self.steps)} in file, {len(steps)} checkpoints; "
                f"only in file: {only_file}; only in checkpoints: {only_dir})"
            )

    def to_json(self) -> dict[str, Any]:
        if self.groups is None:
            return {"steps": list(self.steps), "coefficients": self.values[0].tolist()}
        return {
            "steps": list(self.steps),
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
            return cls(tuple(steps), values, groups)
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


def _numbers(values: Any, source: str) -> list[float]:
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise CoefficientError("coefficients must be a list of numbers")
    if not all(math.isfinite(v) for v in values):
        raise CoefficientError("coefficients contain NaN or Inf")
    return [float(v) for v in values]
