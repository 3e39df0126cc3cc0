"""lcsc: Linear Combination of Saved Checkpoints for diffusion and consistency models.

Merging lives in :mod:`lcsc.merge` (``from lcsc.merge import merge, merge_many``).
"""

from lcsc.checkpoints import CheckpointStack, save_checkpoint
from lcsc.errors import CheckpointError, CoefficientError, LCSCError
from lcsc.merge import Coefficients, GroupPlan

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CheckpointStack",
    "CoefficientError",
    "Coefficients",
    "GroupPlan",
    "LCSCError",
    "__version__",
    "save_checkpoint",
]
