"""Objectives: what the search minimises or maximises, ``score(state_dict) -> float`` with a direction."""

from lcsc.metrics.differentiable import combine_terms  # noqa: E402 - the gradient search's loss combination
from lcsc.objectives.base import (
    HELD_OUT_SEED_OFFSET,
    VALIDATION_SEED_OFFSET,
    Direction,
    FunctionObjective,
    Objective,
    SeededObjective,
    direction_sign,
)
from lcsc.objectives.builtin import builtin_objective, is_builtin
from lcsc.objectives.combined import MeanObjective
from lcsc.objectives.diffusers import diffusers_objective
from lcsc.objectives.generative import FDObjective, FIDObjective, GenerativeObjective, KIDObjective
from lcsc.objectives.loader import load_objective
from lcsc.objectives.validation_loss import ValidationLossObjective

__all__ = [
    "Direction",
    "FDObjective",
    "FIDObjective",
    "GenerativeObjective",
    "KIDObjective",
    "MeanObjective",
    "builtin_objective",
    "combine_terms",
    "diffusers_objective",
    "direction_sign",
    "is_builtin",
    "FunctionObjective",
    "HELD_OUT_SEED_OFFSET",
    "VALIDATION_SEED_OFFSET",
    "Objective",
    "SeededObjective",
    "ValidationLossObjective",
    "load_objective",
]
