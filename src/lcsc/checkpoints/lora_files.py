"""LoRA files as trainers write them, read as exact ΔW = s·B·A per layer (like peft folders, :mod:`.lora`).

**diffusers** (``pytorch_lora_weights.safetensors``, ``save_lora_weights``): keys ``[unet.]<module>.lora_A.weight`` /
``lora_B.weight`` (peft names), ``<module>.lora.down.weight`` / ``lora.up.weight`` (what ``convert_state_dict_to_
diffusers`` makes of attention projections, as diffusers' train_text_to_image_lora writes them),
``<attn>.processor.to_q_lora.down.weight`` (attention processors) and ``lora_linear_layer.down/up``; down = A, up = B.
s = α/r with a ``<module>.alpha`` tensor (the convention of diffusers' Flux loader; its SD loader ignores such
tensors), 1 without one, or peft's rules when ``lora_adapter_metadata`` holds the LoraConfig (diffusers then uses it).
ΔW names: the module path, ``unet.`` / ``transformer.`` left out so that they name the denoiser's own weights.

**kohya-ss** (sd-scripts): keys ``lora_unet_<module_with_underscores>.lora_down.weight`` (A: r×in or r×in×k×k),
``.lora_up.weight`` (B: out×r or out×r×1×1) and ``.alpha``; s = α/r, α absent or 0 gives s = 1 (sd-scripts' rule).
ΔW names keep the kohya name (``lora_unet_….weight``): underscores cannot be mapped back without the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from lcsc.checkpoints.headers import safetensors_header
from lcsc.checkpoints.lora import (
    LORA_DELTA_KEY,
    PEFT_PREFIX,
    LoraAdapter,
    LoraModule,
    module_scale,
    read_safetensors,
)
from lcsc.errors import CheckpointError

__all__ = ["ADAPTER_METADATA_KEY", "DIFFUSERS", "KOHYA", "LORA_WEIGHTS", "PEFT", "LoraFile", "lora_file_format",
           "read_lora_file"]

PEFT, DIFFUSERS, KOHYA = "peft", "diffusers", "kohya"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # diffusers: JSON of "<component>.<LoraConfig field>": value
_DENOISERS = ("unet.", "transformer.")
_DIFFUSERS_KEY = re.compile(r"^(?P<module>.+?)(?:\.lora_(?P<peft>A|B)|\.lora\.(?P<lora>down|up)"
                            r"|\.lora_linear_layer\.(?P<linear>down|up)|_lora\.(?P<proc>down|up))\.weight$")
_DIFFUSERS_MARK = re.compile(r"\.lora[._]|_lora\.|\.alpha$")
_KOHYA_KEY = re.compile(r"^(?P<module>lora_[^.]+)\.(?P<param>lora_down\.weight|lora_up\.weight|alpha)$")
_KOHYA_NAME = re.compile(r"^lora_[^.]+\.")
_KOHYA_MARK = re.compile(r"\.(lora_(down|up|mid)\.|alpha$|dora_scale$|hada_|lokr_)")
_Modules = dict[str, tuple[LoraModule, tuple[str, str]]]  # name → (module, its A and B keys as stored)


@dataclass
class LoraFile(LoraAdapter):
    """A diffusers or kohya LoRA file: ``format``, and each module's (A, B) tensor names as stored (for writing)."""

    format: str = DIFFUSERS
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)


@lru_cache(maxsize=512)
def _header(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, ...], dict[str, str]] | None:
    """Tensor names and metadata from the file's header alone (no mapping of the file: it may be huge)."""
    try:
        header, metadata = safetensors_header(path)
    except CheckpointError:
        return None  # the full-checkpoint reader reports an unreadable file
    return tuple(header), metadata


def lora_file_format(path: str | Path) -> str | None:
    """``"diffusers"`` / ``"kohya"`` for a .safetensors file holding only LoRA tensors of that format, ``"peft"`` for a
    peft adapter's weights file (``base_model.model.`` keys), else None: a full checkpoint (or lcsc's merged ΔW)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    st = path.stat()
    header = _header(str(path.resolve()), st.st_size, st.st_mtime_ns)
    if header is None or not header[0] or header[1].get(LORA_DELTA_KEY) == "true":
        return None
    keys = header[0]
    if all(_KOHYA_NAME.match(k) for k in keys) and any(_KOHYA_MARK.search(k) for k in keys):
        return KOHYA
    if all(_DIFFUSERS_MARK.search(k) for k in keys) and any(_DIFFUSERS_KEY.match(k) for k in keys):
        return PEFT if any(k.startswith(PEFT_PREFIX) for k in keys) else DIFFUSERS
    return None


def _diffusers_key(key: str) -> tuple[str, str] | None:
    """(module as stored, 'A' / 'B' / 'alpha') of a diffusers LoRA key; None for any other tensor."""
    if key.endswith(".alpha"):
        return key[: -len(".alpha")], "alpha"
    match = _DIFFUSERS_KEY.match(key)
    if match is None:
        return None
    down = "down" in (match["lora"], match["linear"], match["proc"])
    return match["module"], "A" if match["peft"] == "A" or down else "B"


def _kohya_key(key: str) -> tuple[str, str] | None:
    match = _KOHYA_KEY.match(key)
    if match is None:
        return None
    return match["module"], {"lora_down.weight": "A", "lora_up.weight": "B", "alpha": "alpha"}[match["param"]]


def _group(file: Path, tensors: dict[str, torch.Tensor], kind: str) -> dict[str, dict[str, Any]]:
    """``{module as stored: {"A": (key, tensor), "B": …, "alpha": …}}``; any other tensor is refused by name."""
    parse = _kohya_key if kind == KOHYA else _diffusers_key
    unsupported = ("LoHa / LoKr (hada_, lokr_), DoRA (dora_scale) and Tucker (lora_mid) tensors" if kind == KOHYA
                   else "DoRA magnitudes (lora_magnitude_vector) and LoRA biases")
    parts: dict[str, dict[str, Any]] = {}
    for key, tensor in sorted(tensors.items()):
        parsed = parse(key)
        if parsed is None:
            raise CheckpointError(f"{file}: tensor {key!r} is not a {kind} LoRA factor or alpha ({unsupported} are "
                                  "not supported)")
        entry = parts.setdefault(parsed[0], {})
        if parsed[1] in entry:
            raise CheckpointError(f"{file}: module {parsed[0]!r} has two {parsed[1]} tensors ({entry[parsed[1]][0]!r}"
                                  f" and {key!r})")
        if not tensor.is_meta and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{file}: tensor {key!r} holds NaN or Inf values")
        entry[parsed[1]] = (key, tensor)
    return parts


def _alpha(file: Path, entry: dict[str, Any]) -> float | None:
    if "alpha" not in entry:
        return None
    key, tensor = entry["alpha"]
    if tensor.numel() != 1:
        raise CheckpointError(f"{file}: {key!r} has shape {tuple(tensor.shape)}; an alpha is one number")
    return 1.0 if tensor.is_meta else float(tensor.double().item())  # meta: shapes only, the scale is unknown


def _factors(file: Path, module: str, entry: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """A and B of one module, checked to be the factors of a linear or convolution weight."""
    where = f"{file}: module {module!r}"
    missing = [f"{'down/A' if f == 'A' else 'up/B'} factor" for f in ("A", "B") if f not in entry]
    if missing:
        raise CheckpointError(f"{where} has {', '.join(repr(k) for k, _ in entry.values())} but no "
                              f"{' and no '.join(missing)}")
    A, B = entry["A"][1], entry["B"][1]
    if A.dim() < 2 or A.dim() != B.dim() or any(int(d) != 1 for d in B.shape[2:]):
        raise CheckpointError(f"{where}: A {tuple(A.shape)} and B {tuple(B.shape)} are not the factors of a "
                              "linear or convolution layer")
    if B.shape[1] != A.shape[0]:
        raise CheckpointError(f"{where}: inconsistent rank: A {tuple(A.shape)} has rank {A.shape[0]}, "
                              f"B {tuple(B.shape)} has {B.shape[1]}")
    return A, B


def _kohya_modules(file: Path, parts: dict[str, dict[str, Any]]) -> _Modules:
    modules: _Modules = {}
    for name, entry in parts.items():
        A, B = _factors(file, name, entry)
        alpha = _alpha(file, entry)
        scale = 1.0 if not alpha else alpha / A.shape[0]  # sd-scripts: α None or 0 → α = r
        modules[name] = LoraModule(name, "", A, B, None, scale), (entry["A"][0], entry["B"][0])
    return modules


def _adapter_config(file: Path, metadata: dict[str, str]) -> dict[str, Any]:
    raw = metadata.get(ADAPTER_METADATA_KEY)
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file}: metadata {ADAPTER_METADATA_KEY} is not JSON ({exc})") from None
    if not isinstance(config, dict) or any(k.endswith(".use_dora") and v for k, v in config.items()):
        raise CheckpointError(f"{file}: metadata {ADAPTER_METADATA_KEY} is not a LoRA config (or sets use_dora)")
    return config


def _diffusers_name(stored: str, processor: bool) -> tuple[str, str]:
    """(prefix, name): attention processors' ``attn1.processor.to_q`` becomes ``attn1.to_q`` (``to_out`` →
    ``to_out.0``) as diffusers maps them; ``unet.`` / ``transformer.`` go into the prefix."""
    name = stored.replace(".processor.", ".")
    if processor and name.endswith(".to_out"):
        name += ".0"
    prefix = next((p for p in _DENOISERS if name.startswith(p)), "")
    return prefix, name[len(prefix):]


def _diffusers_scale(file: Path, config: dict[str, Any], stored: str, name: str, rank: int, alpha: float | None
                     ) -> float:
    component = stored.partition(".")[0]
    own = {k[len(component) + 1:]: v for k, v in config.items() if k.startswith(component + ".")}
    if not own:
        return 1.0 if alpha is None else alpha / rank
    if alpha is not None:
        raise CheckpointError(f"{file}: module {name!r} has an alpha tensor and {ADAPTER_METADATA_KEY} gives its "
                              "LoraConfig; diffusers refuses both")
    declared, scale = module_scale(own, name.removeprefix(component + "."), file)
    if declared != rank:
        raise CheckpointError(f"{file}: module {name!r}: the factors have rank {rank} but {ADAPTER_METADATA_KEY} "
                              f"gives r={declared}")
    return scale


def _diffusers_modules(file: Path, parts: dict[str, dict[str, Any]], config: dict[str, Any]) -> _Modules:
    modules: _Modules = {}
    for stored, entry in parts.items():
        A, B = _factors(file, stored, entry)
        keys = (entry["A"][0], entry["B"][0])
        prefix, name = _diffusers_name(stored, keys[0].endswith("_lora.down.weight"))
        if name in modules:
            raise CheckpointError(f"{file}: two sets of factors for module {name!r} ({modules[name][1][0]!r} and "
                                  f"{keys[0]!r})")
        scale = _diffusers_scale(file, config, stored, name, int(A.shape[0]), _alpha(file, entry))
        modules[name] = LoraModule(name, prefix, A, B, None, scale), keys
    return modules


def read_lora_file(path: str | Path, weights: str | Path | None = None, meta: bool = False) -> LoraFile:
    """Read and validate one diffusers or kohya LoRA file (``weights``; default ``path`` itself). ``path`` is the
    checkpoint as given (the file, or a folder holding it) and names the result; a kohya file's ``ss_steps`` becomes
    its ``step``. ``meta``: the factors' shapes only (from the header, on the meta device; scales are then 1/r)."""
    path = Path(path)
    file = Path(weights) if weights is not None else path
    kind = lora_file_format(file)
    if kind == PEFT:
        raise CheckpointError(f"{file}: a peft adapter's weights; pass the adapter folder (its adapter_config.json "
                              "gives lora_alpha and r, which scale ΔW)")
    if kind is None:
        raise CheckpointError(f"{file}: not a diffusers or kohya LoRA file (not every tensor is a LoRA factor)")
    tensors, metadata = read_safetensors(file, meta)
    parts = _group(file, tensors, kind)
    if kind == KOHYA:
        modules = _kohya_modules(file, parts)
        config: dict[str, Any] = {}
        if "ss_steps" in metadata and "step" not in metadata:
            metadata["step"] = metadata["ss_steps"]  # sd-scripts: the global step when the file was saved
    else:
        config = _adapter_config(file, metadata)
        modules = _diffusers_modules(file, parts, config)
    pairs = dict(sorted(modules.items()))
    return LoraFile(path, file, file, config, {n: m for n, (m, _) in pairs.items()}, metadata, kind,
                    {n: keys for n, (_, keys) in pairs.items()})
