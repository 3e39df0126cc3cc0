"""LoRA adapters in peft's format (Hu et al. 2021, ΔW = (α/r)·B·A), read and validated as exact dense ΔW tensors."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from lcsc.atomic import read_json_object
from lcsc.checkpoints.headers import safetensors_meta
from lcsc.checkpoints.safe_load import safe_torch_load
from lcsc.errors import CheckpointError, first_line

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "LORA_DELTA_KEY",
    "LoraAdapter",
    "LoraModule",
    "adapter_config_file",
    "adapter_weights_file",
    "check_compatible",
    "is_adapter_folder",
    "module_scale",
    "read_adapter",
    "read_safetensors",
]

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
ADAPTER_CONFIG = "adapter_config.json"
LORA_DELTA_KEY = "lcsc_lora_delta"  # metadata flag: these tensors are LoRA ΔW, not full weights
PEFT_PREFIX = "base_model.model."
_KEY = re.compile(r"^(?P<module>.+?)\.lora_(?P<factor>A|B)(?:\.(?P<adapter>[^.]+))?\.(?P<param>weight|bias)$")
_PEFT_DEFAULTS = {"r": 8, "lora_alpha": 8}


@dataclass
class LoraModule:
    """One adapted layer: factors ``A`` (r×in[×k…]) and ``B`` (out×r[×1…]), optional ``bias`` of lora_B, scale."""

    name: str
    prefix: str
    A: torch.Tensor
    B: torch.Tensor
    bias: torch.Tensor | None
    scale: float
    fan_in_fan_out: bool = False

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of the base weight (and of ΔW)."""
        shape = (int(self.B.shape[0]), *map(int, self.A.shape[1:]))
        return (shape[1], shape[0]) if self.fan_in_fan_out else shape

    def delta(self) -> dict[str, torch.Tensor]:
        """``{<module>.weight: s·B·A}`` (plus ``<module>.bias: s·b`` with a lora_B bias), float32."""
        A, B = self.A.to(torch.float32), self.B.to(torch.float32)
        product = (B.flatten(1) @ A.flatten(1)).reshape(B.shape[0], *A.shape[1:])
        out = {f"{self.name}.weight": (product.T if self.fan_in_fan_out else product) * self.scale}
        if self.bias is not None:
            out[f"{self.name}.bias"] = self.bias.to(torch.float32) * self.scale
        return out


@dataclass
class LoraAdapter:
    """A peft LoRA adapter folder: its config, its modules (by module name, sorted) and file metadata."""

    path: Path
    weights: Path
    config_path: Path
    config: dict[str, Any]
    modules: dict[str, LoraModule]
    metadata: dict[str, Any] = field(default_factory=dict)

    def delta_state(self) -> dict[str, torch.Tensor]:
        """Every adapted layer's exact ΔW, keyed by the base weight's name (``<module>.weight``)."""
        out: dict[str, torch.Tensor] = {}
        for module in self.modules.values():
            out.update(module.delta())
        return out


def adapter_weights_file(folder: Path) -> Path | None:
    """``folder/adapter_model.safetensors`` (or ``.bin``) when present, else None."""
    if not folder.is_dir():
        return None
    return next((folder / n for n in ADAPTER_WEIGHTS if (folder / n).is_file()), None)


def is_adapter_folder(path: Path) -> bool:
    """Whether ``path`` is a peft adapter folder (holds ``adapter_model.safetensors`` or ``adapter_model.bin``)."""
    return adapter_weights_file(Path(path)) is not None


def adapter_config_file(folder: Path) -> Path:
    """The adapter's ``adapter_config.json``: in the folder, else in its parent (a run folder of checkpoint-N/)."""
    for candidate in (folder / ADAPTER_CONFIG, folder.parent / ADAPTER_CONFIG):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{folder}: LoRA adapter folder has no {ADAPTER_CONFIG} (nor has its parent folder); "
                          "r and lora_alpha are needed to compute ΔW = (lora_alpha/r)·B·A")


def _read_config(folder: Path) -> tuple[Path, dict[str, Any]]:
    path = adapter_config_file(folder)
    config = read_json_object(path, "a peft adapter config", CheckpointError)
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise CheckpointError(f"{path}: a {peft_type} adapter; only LoRA adapters can be combined")
    for unsupported in ("use_dora", "target_parameters"):
        if config.get(unsupported):
            raise CheckpointError(f"{path}: {unsupported} is set; only plain LoRA (ΔW = s·B·A) is supported")
    for name in ("r", "lora_alpha"):
        value = config.get(name, _PEFT_DEFAULTS[name])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise CheckpointError(f"{path}: {name}={value!r} is not a positive number")
    for name in ("rank_pattern", "alpha_pattern"):
        if not isinstance(config.get(name) or {}, dict):
            raise CheckpointError(f"{path}: {name} must be an object of module pattern → number")
    return path, config


def _pattern_value(patterns: dict[str, Any] | None, module: str, default: Any) -> Any:
    """peft's rule: the first pattern ``p`` with ``re.match(rf"(.*\\.)?({p})$", module)`` wins, else the pattern
    equal to the module's name, else ``default``."""
    for pattern, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return (patterns or {}).get(module, default)


def module_scale(config: dict[str, Any], module: str, source: str | Path = ADAPTER_CONFIG) -> tuple[int, float]:
    """(declared rank, scale) of ``module`` under ``config``: α/r, or α/√r with ``use_rslora``."""
    r = _pattern_value(config.get("rank_pattern"), module, config.get("r", _PEFT_DEFAULTS["r"]))
    alpha = _pattern_value(config.get("alpha_pattern"), module, config.get("lora_alpha", _PEFT_DEFAULTS["lora_alpha"]))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (r, alpha))
    if not numbers or r <= 0 or int(r) != r:
        raise CheckpointError(f"{source}: module {module!r}: r={r!r} and lora_alpha={alpha!r} (after rank_pattern / "
                              "alpha_pattern) must be a positive integer and a number")
    return int(r), float(alpha) / (math.sqrt(r) if config.get("use_rslora") else float(r))


def read_safetensors(file: Path, meta: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a safetensors file and its metadata (``meta``: from its header, on the meta device); an
    unreadable file is one :class:`CheckpointError`."""
    if meta:
        return safetensors_meta(file)
    try:
        with safe_open(str(file), framework="pt", device="cpu") as fh:
            names = list(fh.keys())
            return {k: fh.get_tensor(k) for k in names}, dict(fh.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{file}: not a readable safetensors file ({first_line(exc)})") from None


def _load_tensors(folder: Path, weights: Path, meta: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if weights.suffix == ".safetensors":
        return read_safetensors(weights, meta)
    try:
        obj = safe_torch_load(weights, mmap=meta, meta=meta)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is unusable
        raise CheckpointError(f"{weights}: corrupt or not a PyTorch state dict ({first_line(exc)})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{weights}: not a state dict of tensors")
    return obj, {}


def _group_factors(folder: Path, tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """``{module: {"prefix", "A", "B", "bias"}}`` from peft keys (``…<module>.lora_A[.<adapter>].weight``)."""
    parts: dict[str, dict[str, Any]] = {}
    names: set[str] = set()
    for key, tensor in sorted(tensors.items()):
        match = _KEY.match(key)
        if match is None or (match["factor"] == "A" and match["param"] == "bias"):
            raise CheckpointError(f"{folder}: tensor {key!r} is not a LoRA A/B factor (DoRA magnitudes, embedding "
                                  "LoRA and modules_to_save are not supported)")
        if match["adapter"]:
            names.add(match["adapter"])
        module, prefix = match["module"], ""
        if module.startswith(PEFT_PREFIX):
            prefix, module = PEFT_PREFIX, module[len(PEFT_PREFIX):]
        slot = "bias" if match["param"] == "bias" else match["factor"]
        entry = parts.setdefault(module, {"prefix": prefix, "bias": None})
        if slot in entry and entry[slot] is not None:
            raise CheckpointError(f"{folder}: module {module!r} has two lora_{match['factor']} {match['param']}s "
                                  f"(several adapters in one file: {sorted(names)}?)")
        entry[slot] = tensor
        if not tensor.is_meta and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{folder}: tensor {key!r} holds NaN or Inf values")
    if not parts:
        raise CheckpointError(f"{folder}: adapter file holds no tensors")
    return parts


def _module(folder: Path, config: dict[str, Any], name: str, entry: dict[str, Any]) -> LoraModule:
    """Validate one module's factors against each other and the config, naming the folder and module."""
    where = f"{folder}: module {name!r}"
    for factor in ("A", "B"):
        if entry.get(factor) is None:
            raise CheckpointError(f"{where} has lora_{'B' if factor == 'A' else 'A'} but no lora_{factor}")
    A, B, bias = entry["A"], entry["B"], entry["bias"]
    if A.dim() < 2 or A.dim() != B.dim() or any(int(d) != 1 for d in B.shape[2:]):
        raise CheckpointError(f"{where}: lora_A {tuple(A.shape)} and lora_B {tuple(B.shape)} are not the "
                              "factors of a linear or convolution layer")
    if B.shape[1] != A.shape[0]:
        raise CheckpointError(f"{where}: inconsistent rank: lora_A {tuple(A.shape)} has rank {A.shape[0]}, "
                              f"lora_B {tuple(B.shape)} has {B.shape[1]}")
    if bias is not None and tuple(bias.shape) != (B.shape[0],):
        raise CheckpointError(f"{where}: lora_B bias {tuple(bias.shape)} does not fit lora_B {tuple(B.shape)}")
    rank, scale = module_scale(config, name, folder)
    if rank != A.shape[0]:
        raise CheckpointError(f"{where}: the factors have rank {A.shape[0]} but {ADAPTER_CONFIG} gives r={rank} "
                              "(r / rank_pattern)")
    fan_in_fan_out = bool(config.get("fan_in_fan_out"))
    if fan_in_fan_out and A.dim() != 2:
        raise CheckpointError(f"{where}: fan_in_fan_out applies to linear layers only, not {tuple(A.shape)}")
    return LoraModule(name, entry["prefix"], A, B, bias, scale, fan_in_fan_out)


def read_adapter(path: str | Path, meta: bool = False) -> LoraAdapter:
    """Read and validate one peft LoRA adapter folder (weights + ``adapter_config.json``); never runs pickles.
    ``meta``: the factors' shapes only (tensors on the meta device, from the weights file's header)."""
    folder = Path(path)
    weights = adapter_weights_file(folder)
    if weights is None:
        raise CheckpointError(f"{folder}: not a LoRA adapter folder (no {' or '.join(ADAPTER_WEIGHTS)})")
    config_path, config = _read_config(folder)
    tensors, metadata = _load_tensors(folder, weights, meta)
    modules = {name: _module(folder, config, name, entry)
               for name, entry in sorted(_group_factors(folder, tensors).items())}
    return LoraAdapter(folder, weights, config_path, config, modules, metadata)


def check_compatible(adapters: Iterable[LoraAdapter]) -> None:
    """Raise naming the folder and module unless the adapters adapt the same layers in the same shapes (the ranks
    and scales may differ: the combination is exact in weight space either way)."""
    adapters = list(adapters)
    ref = adapters[0]
    for other in adapters[1:]:
        missing, extra = sorted(ref.modules.keys() - other.modules), sorted(other.modules.keys() - ref.modules)
        if missing or extra:
            parts = ([f"lacks {len(missing)} module(s) such as {missing[:3]}"] if missing else []) + (
                [f"has {len(extra)} extra module(s) such as {extra[:3]}"] if extra else [])
            raise CheckpointError(f"{other.path}: LoRA adapter targets other modules than {ref.path}: "
                                  + "; ".join(parts))
        for name, module in ref.modules.items():
            theirs = other.modules[name]
            if theirs.weight_shape != module.weight_shape or theirs.fan_in_fan_out != module.fan_in_fan_out:
                raise CheckpointError(f"{other.path}: module {name!r} adapts a {theirs.weight_shape} weight, "
                                      f"{ref.path} a {module.weight_shape} one (different base models?)")
            if (theirs.bias is None) != (module.bias is None):
                raise CheckpointError(f"{other.path}: module {name!r}: lora_bias differs from {ref.path}")
