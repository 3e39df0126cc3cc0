"""The ``lcsc`` command line: a thin layer that parses, validates and calls library functions."""

from lcsc.cli.main import main

__all__ = ["main"]
