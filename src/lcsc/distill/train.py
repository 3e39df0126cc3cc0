"""Training the distillation benchmark's runs on two lanes: a DM teacher first, CD runs from its EMA* once it exists."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lcsc.checkpoints.format import read_metadata, save_checkpoint
from lcsc.distill.config import DistillConfig, RunSpec
from lcsc.distill.costs import TRAIN_PASSES
from lcsc.experiment.stages import ModelRun, train_model, train_seconds_at

__all__ = ["train_runs", "teacher_path", "write_teacher", "run_of", "lanes"]

TEACHER_FILE = "teacher-ema-star.safetensors"


def teacher_path(out: Path) -> Path:
    """The CD teacher: the teacher DM's EMA* at the end of its run, as a checkpoint of its own."""
    return out / "teacher" / TEACHER_FILE


def write_teacher(out: Path, spec: RunSpec, state: dict[str, torch.Tensor], star: str) -> Path:
    """Write EMA* of the teacher with the run's model config and data metadata (what CD's checks read)."""
    last = out / spec.name / spec.model / "last.safetensors"
    meta = read_metadata(last)
    extra = {k: v for k, v in meta.items() if k not in ("format", "step", "images_seen", "ema_rate", "config",
                                                         "config_hash")}
    return save_checkpoint(teacher_path(out), state, step=spec.iterations, images_seen=spec.images,
                           config=json.loads(meta["config"]), extra=extra | {"ema_star": star})


def run_of(out: Path, spec: RunSpec, threads: float = 1.0) -> ModelRun:
    """The :class:`ModelRun` of a trained run (its training time read from its log)."""
    run_dir = out / spec.name / spec.model
    nfe = spec.demo.dm_nfe if spec.model == "dm" else spec.demo.cm_nfe
    return ModelRun(spec.model, run_dir, nfe, train_seconds_at(run_dir), threads)


def _finished(out: Path, spec: RunSpec) -> bool:
    state = out / spec.name / spec.model / "state"
    log = out / spec.name / spec.model / "log.jsonl"
    if not state.is_dir() or not log.is_file():
        return False
    lines = log.read_text().splitlines()
    try:
        return bool(lines) and int(json.loads(lines[-1])["step"]) >= spec.iterations
    except (ValueError, KeyError):
        return False


def _train_job(spec: RunSpec, out: Path, teacher: Path | None, threads: int = 1) -> str:
    """One run on a fixed number of threads from start to end (so its weights never depend on timing, as
    ``train_pair``)."""
    from lcsc.data import load_digits_data

    torch.set_num_threads(threads)
    train_model(spec.model, spec.demo, out / spec.name, load_digits_data(), teacher, progress=False)
    return spec.name


def _logged(out: Path, spec: RunSpec) -> int:
    try:
        lines = (out / spec.name / spec.model / "log.jsonl").read_text().splitlines()
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def lanes() -> int:
    """Training processes side by side: one per core (two on the reference machine), one thread each."""
    return max(1, min(2, torch.get_num_threads()))


def train_runs(cfg: DistillConfig, out: Path, make_teacher: Callable[[], Path], progress: bool = True) -> None:
    """Train every run, resuming unfinished ones: the teacher DM first, alone, on every lane's core (it is the longest
    run and everything distilled waits for it); ``make_teacher()`` then writes the CD teacher (its EMA*); then the
    other runs on :func:`lanes` processes of one thread each, longest first."""
    specs = cfg.runs()
    total = sum(s.iterations for s in specs.values())
    ctx = multiprocessing.get_context("spawn")
    with tqdm(total=total, desc="train (all runs)", disable=not progress) as bar:
        if not _finished(out, specs["teacher"]):
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                _follow(pool, [specs["teacher"]], out, specs, bar, threads=lanes())
        make_teacher()
        rest = sorted((s for s in specs.values() if s.name != "teacher" and not _finished(out, s)),
                      key=lambda s: -s.iterations * TRAIN_PASSES[s.model] * s.batch_size)
        with ProcessPoolExecutor(max_workers=lanes(), mp_context=ctx) as pool:
            _follow(pool, rest, out, specs, bar, threads=1)


def _follow(pool, todo: list[RunSpec], out: Path, specs: dict[str, RunSpec], bar, threads: int) -> None:
    """Submit ``todo`` to ``pool`` and follow the runs' logs on ``bar`` until all are done (errors re-raised)."""
    teacher = teacher_path(out)
    futures = [pool.submit(_train_job, s, out, teacher if s.model == "cm-cd" else None, threads) for s in todo]
    while futures:
        done, _ = wait(futures, timeout=1.0, return_when=FIRST_COMPLETED)
        for f in done:
            futures.remove(f)
            f.result()
        bar.n = sum(_logged(out, s) for s in specs.values())
        bar.refresh()
