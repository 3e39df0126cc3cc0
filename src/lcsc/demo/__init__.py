"""End-to-end runs on the embedded default (scikit-learn digits): the quickstart and the paper demo."""

from lcsc.demo.quickstart import QuickstartConfig, QuickstartResult, run_quickstart
from lcsc.demo.run import DemoResult, DemoRow, run_demo
from lcsc.experiment.config import DemoConfig

__all__ = ["DemoConfig", "DemoResult", "DemoRow", "QuickstartConfig", "QuickstartResult", "run_demo", "run_quickstart"]
