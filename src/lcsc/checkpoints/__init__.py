"""Checkpoints: reading and validating checkpoint files, lcsc's file format, and the K×P stack."""

from lcsc.checkpoints.anchor_specs import resolve_anchors
from lcsc.checkpoints.anchors import Anchor
from lcsc.checkpoints.format import checkpoint_name, config_hash, save_checkpoint
from lcsc.checkpoints.layout import Layout, TensorSpec
from lcsc.checkpoints.reader import discover_checkpoints, load_checkpoint, read_step
from lcsc.checkpoints.stack import CheckpointStack

__all__ = [
    "Anchor",
    "CheckpointStack",
    "Layout",
    "TensorSpec",
    "checkpoint_name",
    "config_hash",
    "discover_checkpoints",
    "load_checkpoint",
    "read_step",
    "resolve_anchors",
    "save_checkpoint",
]
