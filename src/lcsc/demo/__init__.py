"""End-to-end runs on the embedded default (scikit-learn digits)."""

from lcsc.demo.quickstart import QuickstartConfig, QuickstartResult, run_quickstart

__all__ = ["QuickstartConfig", "QuickstartResult", "run_quickstart"]
