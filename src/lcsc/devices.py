"""Check a ``--device`` value before any work starts: one clear error instead of a torch assertion mid-run."""

from __future__ import annotations

import re

import torch

from lcsc.errors import ConfigError

__all__ = ["check_device"]

_FORM = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")


def check_device(name: str) -> torch.device:
    """``name`` as a :class:`torch.device` if this machine has it; a :class:`ConfigError` naming it otherwise."""
    match = _FORM.match(str(name).strip())
    if match is None:
        raise ConfigError(f"--device {name!r}: expected cpu, cuda, cuda:N or mps")
    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name!r}: CUDA is not available on this machine (torch "
                              f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use --device cpu")
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise ConfigError(f"--device {name!r}: this machine has {count} CUDA device(s), cuda:0 … cuda:{count - 1}")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name!r}: MPS is not available on this machine; use --device cpu")
    return torch.device(name.strip())
