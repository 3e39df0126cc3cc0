# A merged UNet2DModel written as a diffusers pipeline folder (save_pretrained layout) that from_pretrained loads.
"""``export_pipeline``: the merge of a diffusers run's UNet as a pipeline folder that ``from_pretrained`` loads.

The folder holds ``model_index.json``, ``unet/`` (``config.json`` + ``diffusion_pytorch_model.safetensors``: the
merged tensors bit for bit) and ``scheduler/``. ``model_config`` is what ``lcsc search --model-config`` takes (see
:func:`lcsc.models.diffusers_run.read_diffusers_config`):

* inside a pipeline folder (``model_index.json`` beside ``unet/config.json``): the export keeps that pipeline's class
  and copies its ``model_index.json`` and every component but the UNet (the scheduler, …) as they are;
* a UNet's ``config.json`` or ``save_pretrained`` folder alone: the export is a ``DDPMPipeline`` with the scheduler
  config found beside it (its ``_class_name``, DDPMScheduler when it names none), else ``DDPMScheduler()``'s
  defaults, the schedule the objectives assume.

The folder is written into a hidden temp folder beside the target (``.NAME.XXXXXXXX.tmp``) and renamed into place;
an earlier export at the target is moved aside and deleted only once the new one is in place. A folder there that is
not a pipeline (no ``model_index.json``) is refused rather than replaced.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from lcsc.atomic import check_writable, disk_full_as_error, read_json_object
from lcsc.errors import ConfigError
from lcsc.models.diffusers_run import (
    DiffusersRunConfig,
    build_diffusers_model,
    check_weights_match,
    read_diffusers_config,
)

__all__ = ["PIPELINE_INDEX", "PipelineExport", "check_export_target", "export_pipeline", "merge_pipeline_path"]

PIPELINE_INDEX = "model_index.json"


@dataclass(frozen=True)
class PipelineExport:
    """Where a pipeline was written, its class, its scheduler's class, and the scheduler config it came from (None:
    ``DDPMScheduler``'s defaults)."""

    path: Path
    pipeline_class: str
    scheduler_class: str
    scheduler_source: str | None


def merge_pipeline_path(merged: str | Path) -> Path:
    """Where ``lcsc merge -o DIR/NAME.safetensors`` writes the pipeline: ``DIR/NAME-pipeline/``."""
    merged = Path(merged)
    return merged.with_name(merged.stem + "-pipeline")


def check_export_target(target: str | Path) -> Path:
    """``target`` if a pipeline can be written there: a :class:`ConfigError` naming it when it is a file, cannot be
    written, or is a non-empty folder that is not a pipeline (only an earlier export is replaced)."""
    target = check_writable(target, folder=True)
    if target.is_dir() and any(target.iterdir()) and not (target / PIPELINE_INDEX).is_file():
        raise ConfigError(f"{target}: a folder that is not a diffusers pipeline (no {PIPELINE_INDEX}); lcsc replaces "
                          "only an earlier pipeline export there: move it away or choose another output")
    return target


def export_pipeline(state_dict: Mapping[str, torch.Tensor], model_config: str | Path, target: str | Path, *,
                    source: str = "the merge") -> PipelineExport:
    """Write ``state_dict`` (the merged UNet's tensors) with ``model_config``'s pipeline to the folder ``target``.

    A config that is missing, invalid or does not fit the tensors is one :class:`ConfigError` naming the file
    (``source`` names the tensors in it); nothing is written then.
    """
    config = read_diffusers_config(model_config)
    pipeline_dir = _pipeline_folder(config)
    index = read_json_object(pipeline_dir / PIPELINE_INDEX, "a diffusers pipeline index") if pipeline_dir else None
    if index is not None:
        _check_index(index, pipeline_dir)
    unet = _merged_unet(config, state_dict, source)
    target = check_export_target(target)
    with _atomic_folder(target) as tmp:
        if index is None:
            scheduler_class = _ddpm_pipeline(config, unet, tmp)
        else:
            _copy_pipeline(pipeline_dir, index, tmp)
            unet.save_pretrained(str(tmp / "unet"), safe_serialization=True)
    if index is None:
        return PipelineExport(target, "DDPMPipeline", scheduler_class, config.scheduler_source)
    scheduler, sched_config = _components(index).get("scheduler"), pipeline_dir / "scheduler" / "scheduler_config.json"
    return PipelineExport(target, index["_class_name"], scheduler[1] if scheduler else "none",
                          str(sched_config) if sched_config.is_file() else None)


def _pipeline_folder(config: DiffusersRunConfig) -> Path | None:
    """The pipeline folder holding the UNet config as ``unet/config.json`` beside a ``model_index.json``, or None."""
    unet_dir = Path(config.source).parent
    root = unet_dir.parent
    return root if unet_dir.name == "unet" and (root / PIPELINE_INDEX).is_file() else None


def _components(index: dict) -> dict[str, list]:
    """name → [library, class] of the pipeline's components (entries without a class are left out)."""
    return {k: v for k, v in index.items()
            if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[1] is not None}


def _check_index(index: dict, folder: Path) -> None:
    path = folder / PIPELINE_INDEX
    if not isinstance(index.get("_class_name"), str):
        raise ConfigError(f"{path}: no _class_name (the pipeline class); not a diffusers pipeline index")
    components = _components(index)
    if components.get("unet", [None, None])[1] != "UNet2DModel":
        raise ConfigError(f"{path}: its unet component is {components.get('unet')!r}, not a UNet2DModel; lcsc exports "
                          "pixel-space UNet2DModel pipelines")
    for name in components:
        if name != "unet" and not (folder / name).is_dir():
            raise ConfigError(f"{path}: names the component {name!r}, but {folder / name} is not a folder")


def _merged_unet(config: DiffusersRunConfig, state_dict: Mapping[str, torch.Tensor], source: str):
    """A ``UNet2DModel`` of ``config`` holding ``state_dict``'s tensors themselves (no copy, no cast)."""
    unet = build_diffusers_model(config).unet
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    check_weights_match(unet, tensors, config.source, source)
    unet.load_state_dict(tensors, strict=True, assign=True)
    return unet


def _copy_pipeline(folder: Path, index: dict, tmp: Path) -> None:
    """The pipeline's ``model_index.json`` and every component folder but ``unet/``, copied as they are."""
    shutil.copyfile(folder / PIPELINE_INDEX, tmp / PIPELINE_INDEX)
    for name in _components(index):
        if name != "unet":
            shutil.copytree(folder / name, tmp / name)


def _ddpm_pipeline(config: DiffusersRunConfig, unet, tmp: Path) -> str:
    """Save a ``DDPMPipeline`` of ``unet`` and the run's scheduler into ``tmp``; return the scheduler's class."""
    import diffusers
    from diffusers import DDPMPipeline, DDPMScheduler
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

    if config.scheduler_source is None:
        scheduler = DDPMScheduler()
    else:
        sched = read_json_object(config.scheduler_source, "a diffusers scheduler config")
        name = sched.get("_class_name", "DDPMScheduler")
        cls = getattr(diffusers, name, None) if isinstance(name, str) else None
        if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
            raise ConfigError(f"{config.scheduler_source}: _class_name {name!r} is not a diffusers scheduler")
        scheduler = cls.from_config(sched)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(str(tmp), safe_serialization=True)
    return type(scheduler).__name__


@contextlib.contextmanager
def _atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a new hidden folder beside ``target``; on success fsync its files and rename it to ``target``
    (replacing an earlier one); on any error delete it, leaving ``target`` as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with disk_full_as_error(target):
            yield tmp
            _fsync_tree(tmp)
            _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(target.parent)


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; an existing ``target`` is moved aside first and deleted once ``tmp`` is in."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            with open(Path(root) / name, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
