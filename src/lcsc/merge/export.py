"""Write a merged checkpoint (safetensors, same key layout as the inputs) with its provenance in the metadata."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lcsc.checkpoints.format import save_checkpoint
from lcsc.checkpoints.lora import LORA_DELTA_KEY
from lcsc.checkpoints.stack import CheckpointStack
from lcsc.errors import CheckpointError
from lcsc.merge.coefficients import Coefficients

__all__ = ["save_merged"]


def save_merged(
    path: str | Path, stack: CheckpointStack, state_dict: dict[str, torch.Tensor], coeffs: Coefficients
) -> Path:
    """Atomically write ``state_dict`` (a merge of ``stack`` with ``coeffs``) as safetensors.

    Metadata: the last checkpoint's step and config (so tools that rebuild models from metadata still work),
    the checkpoint steps and content hashes, the anchors' names and hashes (``lcsc_anchors``, when the stack has
    anchors), and the coefficients; ``lcsc_lora_delta`` marks a merge of LoRA
    adapters (ΔW of the adapted layers only, see :mod:`lcsc.merge.lora`).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: the merged checkpoint must be a .safetensors file")
    last = stack.metadata[-1]
    config = json.loads(last["config"]) if "config" in last else None
    extra = {
        "lcsc_merged": "true",
        "lcsc_steps": json.dumps(stack.steps),
        "lcsc_hashes": json.dumps(stack.hashes),
        "lcsc_coefficients": json.dumps(coeffs.to_json()),
    }
    if stack.anchors:  # rows after the window's: their names and content hashes, in row order
        extra["lcsc_anchors"] = json.dumps([{"name": a.name, "sha256": a.sha256} for a in stack.anchors])
    if "data" in last:  # what lcsc train recorded about the training data (for evaluation)
        extra["data"] = last["data"]
    if last.get(LORA_DELTA_KEY) == "true":  # merged LoRA ΔW of the adapted layers, not full weights
        extra[LORA_DELTA_KEY] = "true"
    images = last.get("images_seen")
    return save_checkpoint(
        path,
        {k: v.detach().cpu() for k, v in state_dict.items()},
        step=stack.steps[-1],
        images_seen=int(images) if images is not None else None,
        config=config,
        extra=extra,
    )
