"""The options ``lcsc search`` saves in its output folder (``search_args.json``) and ``--resume`` reads back."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lcsc.atomic import write_json
from lcsc.errors import ConfigError

__all__ = ["SAVED_NAME", "RESUME_KEPT", "RESUME_TAKEN", "read_saved", "save_args"]

SAVED_NAME = "search_args.json"
RESUME_KEPT = ("optimizer", "space", "popsize", "racing", "race_fraction", "race_keep")  # refused if changed
RESUME_TAKEN = ("objective", "direction", "generation_size", "parents", "sigma", "mix_prob", "convex", "groups", "seed",
                "half_lives", "interval", "key", "storage", "device")  # always the saved values


def read_saved(folder: Path) -> dict:
    """The options a search saved in ``folder`` (a clear error when they are missing or damaged)."""
    path = folder / SAVED_NAME
    if not path.is_file():
        raise ConfigError(f"{folder}: no {SAVED_NAME}; is this a search output folder?")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); the saved search options are damaged") from None
    required = (*RESUME_TAKEN, "evals", "checkpoints", "init_coeffs")
    missing = [k for k in required if k not in saved] if isinstance(saved, dict) else list(required)
    if missing:
        raise ConfigError(f"{path}: saved search options lack {', '.join(missing)}; the file is damaged or not "
                          "written by lcsc search")
    return saved


def save_args(args: argparse.Namespace) -> None:
    """What ``--resume`` needs; written once every setting has been checked (a refused search writes nothing)."""
    args.output.mkdir(parents=True, exist_ok=True)
    saved = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    saved.update(checkpoints=[str(p) for p in args.checkpoints], init_coeffs=[str(p) for p in args.init_coeffs])
    write_json(args.output / SAVED_NAME, saved)
