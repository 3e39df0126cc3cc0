"""A user objective for `lcsc search`: validation loss of the quickstart's digits classifier.

    lcsc search runs/quickstart/checkpoints --objective examples/digits_objective.py:make_objective -o runs/search

The quickstart trains on 80% of the digits; this objective searches on half of the other 20% and
`held_out_loss` reports on the remaining half, which the search never sees.
"""

import torch

from lcsc.demo.quickstart import quickstart_model, search_and_held_out
from lcsc.objectives import ValidationLossObjective


def make_objective() -> ValidationLossObjective:
    """Zero-argument factory: `lcsc search` calls it once and scores every candidate with the result."""
    search_split, _ = search_and_held_out(seed=0)
    return ValidationLossObjective(
        quickstart_model(), torch.nn.functional.cross_entropy, search_split, name="digits_val_loss"
    )


def held_out_loss(state_dict) -> float:
    """Loss on the half of the test split the search never saw."""
    _, held_out = search_and_held_out(seed=0)
    return ValidationLossObjective(quickstart_model(), torch.nn.functional.cross_entropy, held_out).score(
        state_dict
    )
