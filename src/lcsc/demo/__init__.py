"""End-to-end runs on the embedded default (scikit-learn digits): the quickstart and the paper demo."""

from lcsc.demo.config import DemoConfig
from lcsc.demo.quickstart import QuickstartConfig, QuickstartResult, run_quickstart
from lcsc.demo.run import DemoResult, DemoRow, run_demo

__all__ = ["DemoConfig", "DemoResult", "DemoRow", "QuickstartConfig", "QuickstartResult", "run_demo", "run_quickstart"]
