"""The distillation benchmark (``benchmarks/distillation.py``): the LCSC paper's CD / CT training-cost experiment at
digits scale, built on the shared stages of :mod:`lcsc.experiment`: the runs (config), their training (train), every
stage resumable (run), the paper's cost accounting (costs), the time estimate (estimate), the headlines from the rows
(analysis) and the report (report)."""

from lcsc.distill.config import DistillConfig, RunSpec
from lcsc.distill.run import run_distillation

__all__ = ["DistillConfig", "RunSpec", "run_distillation"]
