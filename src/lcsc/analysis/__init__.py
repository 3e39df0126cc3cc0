"""Analysis: ablations and the figures that explain them."""

from lcsc.analysis.ablation import VARIANTS, AblationConfig, Variant, iters_to_reach, run_ablation, summarize

__all__ = ["VARIANTS", "AblationConfig", "Variant", "iters_to_reach", "run_ablation", "summarize"]
