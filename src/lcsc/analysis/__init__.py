"""Analysis: ablations and the figures that explain them."""

from lcsc.analysis.ablation import VARIANTS, AblationConfig, Variant, summarize
from lcsc.analysis.ablation_runs import run_ablation

__all__ = ["VARIANTS", "AblationConfig", "Variant", "run_ablation", "summarize"]
