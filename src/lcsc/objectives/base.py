"""The objective interface: ``score(state_dict) -> float`` with a declared direction, and seeded-noise policy."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import torch

from lcsc.errors import ConfigError

__all__ = ["Direction", "Objective", "FunctionObjective", "SeededObjective", "HELD_OUT_SEED_OFFSET",
           "VALIDATION_SEED_OFFSET"]

Direction = Literal["minimize", "maximize"]
HELD_OUT_SEED_OFFSET = 1_000_003
VALIDATION_SEED_OFFSET = 500_009  # validation noise: the search may choose among its best on it, never report on it


@runtime_checkable
class Objective(Protocol):
    """Anything with ``direction`` and ``score(state_dict) -> float``; it owns its model and loads each state.

    Optional: ``score_many(state_dicts) -> list[float]`` to score a generation together; ``name``;
    ``role`` ("search" or "held_out") for seeded objectives.
    """

    direction: Direction

    def score(self, state_dict: dict[str, torch.Tensor]) -> float: ...


def _check_direction(direction: str) -> Direction:
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"direction={direction!r}: expected 'minimize' or 'maximize'")
    return direction  # type: ignore[return-value]


class FunctionObjective:
    """Wrap a plain ``f(state_dict) -> float`` as an objective."""

    def __init__(
        self,
        fn: Callable[[dict[str, torch.Tensor]], float],
        direction: Direction = "minimize",
        name: str | None = None,
    ):
        self.fn, self.direction = fn, _check_direction(direction)
        self.name = name or getattr(fn, "__name__", "objective")

    def score(self, state_dict: dict[str, torch.Tensor]) -> float:
        return float(self.fn(state_dict))


class SeededObjective:
    """Base for objectives that draw noise (and labels) from a seeded CPU generator.

    The search uses ``noise_seed``; :meth:`held_out` returns a copy on a different seed, which the search refuses.
    Subclasses draw their fixed noise from :meth:`generator`.
    """

    direction: Direction = "minimize"
    role: str = "search"

    def __init__(self, noise_seed: int = 0, held_out_seed: int | None = None):
        self.noise_seed = int(noise_seed)
        self.held_out_seed = int(
            held_out_seed if held_out_seed is not None else noise_seed + HELD_OUT_SEED_OFFSET
        )
        if self.held_out_seed == self.noise_seed:
            raise ConfigError(f"held-out seed {self.held_out_seed} must differ from the search noise seed")

    def generator(self) -> torch.Generator:
        """A fresh CPU generator on this objective's seed (CPU so CPU and GPU runs see the same noise)."""
        return torch.Generator(device="cpu").manual_seed(self.noise_seed)

    def held_out(self) -> SeededObjective:
        """The same objective on the held-out seed, for reporting only."""
        other = copy.copy(self)
        other.noise_seed, other.role = self.held_out_seed, "held_out"
        other._on_seed_change()
        return other

    def validation(self) -> SeededObjective:
        """The same objective on a validation seed (neither the search's nor the held-out one); the search uses it
        only to choose among its best candidates (``SearchConfig.revalidate``)."""
        other = copy.copy(self)
        other.noise_seed, other.role = self.noise_seed + VALIDATION_SEED_OFFSET, "validation"
        other._on_seed_change()
        return other

    def _on_seed_change(self) -> None:
        """Subclasses regenerate cached noise here."""
