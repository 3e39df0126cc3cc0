"""Consistency models: training (improved CT) and distillation (CD) losses, the EDM teacher view, sampling."""

from lcsc.consistency.karras import ict_num_scales, karras_sigmas, lognormal_index_probs, pseudo_huber
from lcsc.consistency.losses import ConsistencyDistillationLoss, ConsistencyTrainingLoss
from lcsc.consistency.sampling import ConsistencySampler, sample_cm
from lcsc.consistency.teacher import EDMTeacher

__all__ = [
    "ConsistencyDistillationLoss",
    "ConsistencySampler",
    "ConsistencyTrainingLoss",
    "EDMTeacher",
    "ict_num_scales",
    "karras_sigmas",
    "lognormal_index_probs",
    "pseudo_huber",
    "sample_cm",
]
