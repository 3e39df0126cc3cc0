"""The objective interface: ``score(state_dict) -> float`` with a declared direction, and seeded-noise policy."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import torch

from lcsc.errors import ConfigError
from lcsc.protocol import REPORT_NOISE_OFFSET, VALIDATION_NOISE_OFFSET

__all__ = ["Direction", "Objective", "FunctionObjective", "SeededObjective", "HELD_OUT_SEED_OFFSET",
           "VALIDATION_SEED_OFFSET", "noise_fingerprint", "check_noise_separation", "direction_sign"]

Direction = Literal["minimize", "maximize"]
HELD_OUT_SEED_OFFSET = REPORT_NOISE_OFFSET  # held-out noise is report noise (lcsc.protocol)
VALIDATION_SEED_OFFSET = VALIDATION_NOISE_OFFSET  # the search may choose among its best on it, never report on it


@runtime_checkable
class Objective(Protocol):
    """Anything with ``direction`` and ``score(state_dict) -> float``; it owns its model and loads each state.

    Optional: ``score_many(state_dicts) -> list[float]`` to score a generation together; ``name``;
    ``role`` ("search" or "held_out") for seeded objectives.
    """

    direction: Direction

    def score(self, state_dict: dict[str, torch.Tensor]) -> float: ...


def noise_fingerprint(generator: torch.Generator, draws: int = 256) -> str:
    """SHA-256 (16 hex digits) of the first ``draws`` N(0, 1) values ``generator`` produces (it is advanced).

    Two seeds that draw the same noise have the same fingerprint, whatever their integers: PyTorch's CPU generator
    keeps only the low 32 bits of a seed, so seeds that differ by a multiple of 2**32 draw identical noise.
    """
    values = torch.randn(draws, generator=generator, dtype=torch.float64)
    return hashlib.sha256(values.numpy().tobytes()).hexdigest()[:16]


def check_noise_separation(objective: object) -> None:
    """Refuse an objective whose search noise equals its held-out (or validation) noise, comparing the noise.

    Objectives without ``noise_fingerprint`` / ``held_out`` (plain functions, deterministic metrics) pass.
    """
    if not (hasattr(objective, "noise_fingerprint") and hasattr(objective, "held_out")):
        return
    others = {"search": objective, "held-out": objective.held_out()}
    if hasattr(objective, "validation"):
        others["validation"] = objective.validation()
    seen: dict[str, str] = {}
    for role, obj in others.items():
        fp = obj.noise_fingerprint()
        if fp in seen:
            raise ConfigError(f"the {role} noise (seed {getattr(obj, 'noise_seed', '?')}) is identical to the "
                              f"{seen[fp]} noise (seed {getattr(others[seen[fp]], 'noise_seed', '?')}; CPU seeds "
                              "alias modulo 2**32): choose seeds whose noise differs")
        seen[fp] = role


def _check_direction(direction: str) -> Direction:
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"direction={direction!r}: expected 'minimize' or 'maximize'")
    return direction  # type: ignore[return-value]


def direction_sign(direction: str) -> float:
    """1.0 for ``"minimize"``, −1.0 for ``"maximize"``: ``sign * score`` is a loss (lower is better)."""
    return 1.0 if _check_direction(direction) == "minimize" else -1.0


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
        if _seed_noise(self.held_out_seed) == _seed_noise(self.noise_seed):
            raise ConfigError(f"held-out seed {self.held_out_seed} draws the same noise as the search seed "
                              f"{self.noise_seed} (CPU seeds alias modulo 2**32): choose another held-out seed")

    def generator(self) -> torch.Generator:
        """A fresh CPU generator on this objective's seed (CPU so CPU and GPU runs see the same noise)."""
        return torch.Generator(device="cpu").manual_seed(self.noise_seed)

    def noise_fingerprint(self) -> str:
        """A hash of the first draws of this objective's noise (equal noise ⇔ equal fingerprint)."""
        return noise_fingerprint(self.generator())

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


def _seed_noise(seed: int) -> str:
    return noise_fingerprint(torch.Generator(device="cpu").manual_seed(seed))
