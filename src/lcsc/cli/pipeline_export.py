"""The diffusers pipeline export of ``lcsc merge --model-config`` and of ``lcsc search --model-config``: the merge
as a pipeline folder ``from_pretrained`` loads (``NAME-pipeline/`` beside ``-o NAME.safetensors``, ``OUT/pipeline/``
for a search), and the one line saying where it is and how to load it."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lcsc.checkpoints.diffusers_export import (
    PipelineExport,
    check_export_target,
    export_pipeline,
    merge_pipeline_path,
)
from lcsc.errors import ConfigError

__all__ = ["add_merge_pipeline_option", "check_merge_pipeline", "write_merge_pipeline", "write_search_pipeline",
           "pipeline_line"]


def add_merge_pipeline_option(p: argparse.ArgumentParser) -> None:
    """``lcsc merge --model-config``: also write the merge as a diffusers pipeline."""
    p.add_argument("--model-config", type=Path, default=None, metavar="CONFIG",
                   help="a diffusers run's UNet config.json, its save_pretrained folder, or the run's pipeline folder: "
                        "also write the merge as a pipeline, NAME-pipeline/ beside -o NAME.safetensors "
                        "(DDPMPipeline.from_pretrained loads it)")


def check_merge_pipeline(args: argparse.Namespace, adapters: bool) -> None:
    """Refuse, before any work, a ``--model-config`` with LoRA adapters, a config that cannot be read, or a pipeline
    folder that cannot be written."""
    if getattr(args, "model_config", None) is None:
        return
    if adapters:
        raise ConfigError(f"--model-config applies to full checkpoints of a diffusers run; {args.checkpoints[0]} "
                          "holds LoRA adapters")
    from lcsc.models.diffusers_run import read_diffusers_config

    read_diffusers_config(args.model_config)
    check_export_target(merge_pipeline_path(args.output))


def write_merge_pipeline(args: argparse.Namespace, merged: dict[str, torch.Tensor]) -> PipelineExport | None:
    """The merge written as ``NAME-pipeline/`` beside ``-o NAME.safetensors`` (None without ``--model-config``)."""
    if getattr(args, "model_config", None) is None:
        return None
    return export_pipeline(merged, args.model_config, merge_pipeline_path(args.output), source=str(args.output))


def write_search_pipeline(args: argparse.Namespace, merged_path: Path) -> None:
    """For a search over a diffusers run (``--model-config``): its ``merged.safetensors`` as ``OUT/pipeline/``, and
    the line saying so."""
    if getattr(args, "model_config", None) is None:
        return
    from safetensors.torch import load_file

    merged = load_file(str(merged_path))
    print(pipeline_line(export_pipeline(merged, args.model_config, Path(args.output) / "pipeline",
                                        source=str(merged_path))))


def pipeline_line(export: PipelineExport) -> str:
    """One line: where the pipeline is, what it holds and how to load it."""
    scheduler = export.scheduler_class if export.scheduler_source else f"{export.scheduler_class} (its defaults)"
    return (f"pipeline: {export.path}/ ({export.pipeline_class}: the merged UNet + {scheduler}); load it with "
            f"{export.pipeline_class}.from_pretrained(\"{export.path}\")")
