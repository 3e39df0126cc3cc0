"""The flat layout of a checkpoint: which float tensors sit where in a stack row, and validation against it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lcsc.errors import CheckpointError

__all__ = ["TensorSpec", "Layout", "NONNEGATIVE_SUFFIXES", "dtype_from_name"]

NONNEGATIVE_SUFFIXES = ("running_var",)


def dtype_from_name(name: str) -> torch.dtype:
    """``"float32"`` → ``torch.float32``."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"unknown dtype {name!r}")
    return dtype


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a checkpoint. Float tensors have an ``offset`` into the stack row; others have -1."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int
    numel: int

    @property
    def is_float(self) -> bool:
        return self.offset >= 0


@dataclass(frozen=True)
class Layout:
    """Every tensor of a checkpoint (sorted by name); the float ones packed into one row of P numbers."""

    specs: tuple[TensorSpec, ...]
    numel: int

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> Layout:
        specs, offset = [], 0
        for name in sorted(tensors):
            t = tensors[name]
            if t.is_floating_point():
                specs.append(TensorSpec(name, tuple(t.shape), _dtype_name(t.dtype), offset, t.numel()))
                offset += t.numel()
            else:
                specs.append(TensorSpec(name, tuple(t.shape), _dtype_name(t.dtype), -1, t.numel()))
        if offset == 0:
            raise CheckpointError("checkpoint holds no floating-point tensors to combine")
        return cls(tuple(specs), offset)

    @property
    def float_specs(self) -> list[TensorSpec]:
        return [s for s in self.specs if s.is_float]

    @property
    def other_specs(self) -> list[TensorSpec]:
        return [s for s in self.specs if not s.is_float]

    def validate(self, path: Path, tensors: dict[str, torch.Tensor], reference: Path) -> None:
        """Raise a CheckpointError naming the file and tensor when ``tensors`` does not match this layout."""
        names = {s.name for s in self.specs}
        missing, extra = sorted(names - tensors.keys()), sorted(tensors.keys() - names)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} key(s) such as {missing[:3]}")
            if extra:
                parts.append(f"has {len(extra)} extra key(s) such as {extra[:3]}")
            raise CheckpointError(f"{path}: keys differ from {reference.name}: " + "; ".join(parts))
        for spec in self.specs:
            t = tensors[spec.name]
            if tuple(t.shape) != spec.shape:
                raise CheckpointError(
                    f"{path}: tensor {spec.name!r} has shape {tuple(t.shape)}, {reference.name} has {spec.shape}"
                )
            if _dtype_name(t.dtype) != spec.dtype:
                raise CheckpointError(
                    f"{path}: tensor {spec.name!r} has dtype {_dtype_name(t.dtype)}, {reference.name} has {spec.dtype}"
                )

    def flatten(self, tensors: dict[str, torch.Tensor], out: torch.Tensor) -> torch.Tensor:
        """Copy the float tensors into the 1-D ``out`` (any float dtype), converting as needed."""
        for spec in self.float_specs:
            out[spec.offset : spec.offset + spec.numel].copy_(tensors[spec.name].reshape(-1))
        return out

    def unflatten(self, vector: torch.Tensor, cast: bool = True) -> dict[str, torch.Tensor]:
        """View a flat vector as float tensors (no copy when the dtype already matches or ``cast=False``)."""
        out = {}
        for spec in self.float_specs:
            view = vector[spec.offset : spec.offset + spec.numel].view(spec.shape)
            dtype = dtype_from_name(spec.dtype)
            out[spec.name] = view.to(dtype) if cast and view.dtype != dtype else view
        return out

    def nonnegative_slices(self) -> list[tuple[str, slice]]:
        """Slices of the row holding buffers that must stay >= 0 (BatchNorm running variances)."""
        return [
            (s.name, slice(s.offset, s.offset + s.numel))
            for s in self.float_specs
            if s.name.endswith(NONNEGATIVE_SUFFIXES)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "numel": self.numel,
            "specs": [[s.name, list(s.shape), s.dtype, s.offset, s.numel] for s in self.specs],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Layout:
        specs = tuple(TensorSpec(n, tuple(sh), dt, off, num) for n, sh, dt, off, num in obj["specs"])
        return cls(specs, int(obj["numel"]))
