"""Exceptions raised by lcsc. Every message names the file, tensor or value at fault."""

from __future__ import annotations

__all__ = [
    "LCSCError", "CheckpointError", "CoefficientError", "ConfigError", "DataError", "DiskFullError", "TrainingError",
    "first_line",
]


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of a library exception's text (its type name when empty), for a one-line message."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


class LCSCError(Exception):
    """Base class of every error lcsc raises on bad input; the CLI turns it into exit code 2."""


class CheckpointError(LCSCError, ValueError):
    """A checkpoint file or a set of checkpoints cannot be used."""


class CoefficientError(LCSCError, ValueError):
    """A coefficient vector or coefficient file is invalid for the stack it is applied to."""


class ConfigError(LCSCError, ValueError):
    """A configuration value is out of range or inconsistent."""


class DataError(LCSCError, ValueError):
    """A dataset (image folder, ``.npz`` array, embedded set) cannot be read or is inconsistent."""


class TrainingError(LCSCError, RuntimeError):
    """Training went wrong in a way the user must act on (e.g. the loss became NaN/Inf)."""


class DiskFullError(LCSCError, OSError):
    """A write ran out of disk space (ENOSPC) or quota (EDQUOT). The message names the file; the previous file at
    that name, if any, is unchanged. Also an :class:`OSError` (``errno`` is set), so ``except OSError`` still works."""
