"""lcsc: Linear Combination of Saved Checkpoints for diffusion and consistency models."""

from lcsc.checkpoints import CheckpointStack, save_checkpoint
from lcsc.errors import CheckpointError, CoefficientError, LCSCError
from lcsc.merge import Coefficients, GroupPlan, merge, merge_many

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CheckpointStack",
    "CoefficientError",
    "Coefficients",
    "GroupPlan",
    "LCSCError",
    "__version__",
    "merge",
    "merge_many",
    "save_checkpoint",
]
