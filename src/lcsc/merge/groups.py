"""Coefficient groups: map parameter names (by glob) to G groups, each with its own coefficient vector."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from lcsc.checkpoints.layout import Layout
from lcsc.errors import CoefficientError

__all__ = ["GroupPlan", "groups_by_prefix"]


@dataclass(frozen=True)
class GroupPlan:
    """Contiguous runs ``(start, end, group)`` of the stack row, each merged with its group's coefficients."""

    names: tuple[str, ...]
    runs: tuple[tuple[int, int, int], ...]

    @property
    def G(self) -> int:  # noqa: N802 - the paper's style of symbol
        return len(self.names)

    @classmethod
    def single(cls, layout: Layout) -> GroupPlan:
        """One group covering every parameter: the plain LCSC search space."""
        return cls(("all",), ((0, layout.numel, 0),))

    @classmethod
    def from_globs(cls, layout: Layout, groups: dict[str, list[str]]) -> GroupPlan:
        """Assign each float tensor to the first group with a matching glob; unmatched tensors are an error."""
        if not groups:
            raise CoefficientError("groups: at least one group is needed")
        names = tuple(groups)
        runs: list[tuple[int, int, int]] = []
        for spec in layout.float_specs:
            g = next(
                (i for i, n in enumerate(names) if any(fnmatch.fnmatchcase(spec.name, p) for p in groups[n])),
                None,
            )
            if g is None:
                raise CoefficientError(
                    f"parameter {spec.name!r} matches no group glob ({', '.join(names)}); add a catch-all group ['*']"
                )
            start, end = spec.offset, spec.offset + spec.numel
            if runs and runs[-1][2] == g and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], end, g)
            else:
                runs.append((start, end, g))
        return cls(names, tuple(runs))

    def sizes(self) -> dict[str, int]:
        """How many scalars each group holds."""
        out = dict.fromkeys(self.names, 0)
        for start, end, g in self.runs:
            out[self.names[g]] += end - start
        return out


def groups_by_prefix(layout: Layout, depth: int = 1) -> dict[str, list[str]]:
    """One group per name prefix of ``depth`` dotted parts (e.g. per top-level block), as glob lists."""
    groups: dict[str, list[str]] = {}
    for spec in layout.float_specs:
        parts = spec.name.split(".")
        prefix = ".".join(parts[:depth])
        glob = prefix + ".*" if len(parts) > depth else prefix
        groups.setdefault(prefix, [])
        if glob not in groups[prefix]:
            groups[prefix].append(glob)
    return groups
