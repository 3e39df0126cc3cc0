"""Held-out scores of a search's result in every feature space of its data, searched or not.

A search can improve the space it optimises while the model gets no better in another one. Every search report
therefore scores the best individual, the best initial individual and the last checkpoint on held-out noise in each
space (FD_digits, FD_digits2, FD_digits3 and the report-only FD_digits4 for the embedded digits; the searched space otherwise) and states the gain
over the best initial individual in each, marking which spaces the search saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lcsc.objectives.builtin import _default_space, _single, mean_terms, parse_builtin, resolve_auto, run_data
from lcsc.objectives.generative import GenerativeObjective
from lcsc.protocol import DECISION_SPACES, REPORT_SPACES

__all__ = ["DIGITS_SPACES", "SpaceReport", "searched_spaces", "cross_space_objectives", "cross_space_report"]

DIGITS_SPACES = (*DECISION_SPACES, *REPORT_SPACES)  # FD4 is reported, never searched


@dataclass(frozen=True)
class SpaceReport:
    """Held-out FD in one space for each scored state, and whether the search saw the space."""

    space: str
    searched: bool
    scores: dict[str, float]

    def gain(self, of: str = "best", over: str = "best initial") -> float:
        """Relative improvement (over − of) / over: positive when ``of`` is better (lower)."""
        return 1.0 - self.scores[of] / self.scores[over]


def searched_spaces(name: str, default_space: str) -> list[str]:
    """The feature spaces a built-in objective name scores in (``auto`` / ``fd`` resolve to ``default_space``)."""
    terms = mean_terms(name) or [name]
    return [parse_builtin(t).space or default_space for t in terms]


def cross_space_objectives(checkpoints: str | Path | list, name: str, *, data: str | None = None,
                           num_samples: int = 1000, nfe: int | None = None, solver: str = "dpm-solver",
                           device: str | torch.device = "cpu", noise_seed: int = 0
                           ) -> dict[str, tuple[GenerativeObjective, bool]]:
    """space → (held-out FD objective on ``noise_seed``'s held-out seed, searched?) for the run's data."""
    from lcsc.checkpoints import discover_checkpoints

    images = run_data(discover_checkpoints(checkpoints)[0], data)
    default = _default_space(images)
    searched = searched_spaces(resolve_auto(name, checkpoints, data), default)
    spaces = list(DIGITS_SPACES) if default == "digits" else list(dict.fromkeys(searched))
    out, model = {}, None
    for space in spaces:
        obj = _single(checkpoints, f"fd-{space}", data=data, num_samples=num_samples, nfe=nfe, solver=solver,
                      device=device, noise_seed=noise_seed, progress=False, batched=False, model=model)
        model = obj.model
        out[space] = (obj.held_out(), space in searched)
    return out


@torch.no_grad()
def cross_space_report(objectives: dict[str, tuple[GenerativeObjective, bool]],
                       states: dict[str, dict[str, torch.Tensor]]) -> list[SpaceReport]:
    """Score every labelled state in every space; images are generated once per state (same held-out noise)."""
    first = next(iter(objectives.values()))[0]
    images = {label: first.samples(state) for label, state in states.items()}
    return [SpaceReport(space, searched, {label: obj.score_images(x) for label, x in images.items()})
            for space, (obj, searched) in objectives.items()]
