"""Human-readable byte counts, one implementation for messages and CLI output."""

from __future__ import annotations

__all__ = ["human_bytes"]


def human_bytes(n: float, binary: bool = False) -> str:
    """``n`` bytes as ``"512 B"``, ``"16.4 KB"`` … (powers of 1000; with ``binary``, ``KiB``… powers of 1024)."""
    base, units = (1024, ("B", "KiB", "MiB", "GiB", "TiB")) if binary else (1000, ("B", "KB", "MB", "GB", "TB"))
    for unit in units:
        if n < base or unit == units[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= base
    return f"{n:.1f} {units[-1]}"
