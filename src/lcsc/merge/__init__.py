"""Merging: linear combinations of a checkpoint stack, per group, the coefficient file format, post-hoc EMA."""

from lcsc.merge.coefficients import SUM_TOLERANCE, Coefficients
from lcsc.merge.export import save_merged
from lcsc.merge.groups import GroupPlan, groups_by_prefix
from lcsc.merge.linear import merge, merge_coefficients, merge_many, project_gradient
from lcsc.merge.merger import StackMerger
from lcsc.merge.posthoc import PROFILE_TOL, PosthocEMA, Reconstruction

__all__ = [
    "Coefficients",
    "GroupPlan",
    "PROFILE_TOL",
    "PosthocEMA",
    "Reconstruction",
    "SUM_TOLERANCE",
    "StackMerger",
    "groups_by_prefix",
    "merge",
    "merge_coefficients",
    "merge_many",
    "project_gradient",
    "save_merged",
]
