"""Load a user objective from ``path/to/file.py:function`` or ``package.module:function``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from lcsc.errors import ConfigError
from lcsc.objectives.base import Direction, FunctionObjective, Objective

__all__ = ["load_objective"]


def _load_attribute(spec: str):
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(
            f"--objective {spec!r}: expected 'path/to/file.py:function' or 'package.module:function'"
        )
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"--objective {spec!r}: no such file {path}")
        name = f"lcsc_user_objective_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError(
                f"--objective {spec!r}: importing {path} failed: {type(exc).__name__}: {exc}"
            ) from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"--objective {spec!r}: cannot import module {target!r} ({exc})") from None
    if not hasattr(module, attr):
        raise ConfigError(f"--objective {spec!r}: {target} has no attribute {attr!r}")
    return getattr(module, attr)


def load_objective(spec: str, direction: Direction | None = None) -> Objective:
    """Resolve ``spec`` to an objective.

    The attribute may be an objective (has ``score``), a zero-argument factory returning one (or a score function),
    or a score function ``f(state_dict) -> float``. ``direction`` overrides; otherwise the object's own
    ``direction`` attribute, else ``minimize``.
    """
    obj = _load_attribute(spec)
    if not hasattr(obj, "score") and callable(obj):
        params = [
            p
            for p in inspect.signature(obj).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if not params:
            try:
                obj = obj()
            except Exception as exc:  # the user's factory: one line naming it, not a traceback
                raise ConfigError(f"--objective {spec!r}: calling {spec.rpartition(':')[2]}() failed: "
                                  f"{type(exc).__name__}: {exc}") from None
    if hasattr(obj, "score"):
        if direction is not None:
            obj.direction = direction
        if getattr(obj, "direction", None) not in ("minimize", "maximize"):
            raise ConfigError(f"--objective {spec!r}: direction must be 'minimize' or 'maximize'")
        return obj
    if callable(obj):
        return FunctionObjective(obj, direction or getattr(obj, "direction", "minimize"), name=spec)
    raise ConfigError(f"--objective {spec!r}: {type(obj).__name__} is neither an objective nor a callable")
