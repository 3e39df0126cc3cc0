"""CheckpointRecorder: raw weights every I iterations inside windows, EMA snapshots at window starts and ends,
power-EMA snapshots for post-hoc EMA, in any loop.

    rec = CheckpointRecorder("runs/x", model, total_steps=5000, window=1000, interval=10, ema_half_lives=[200])
    for step in range(1, 5001):
        ...; optimizer.step(); rec.step(step)
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lcsc.atomic import atomic_path, remove_stale_temps
from lcsc.checkpoints.format import checkpoint_name, save_checkpoint
from lcsc.errors import ConfigError
from lcsc.training.ema import MultiEMA
from lcsc.training.phema import PowerEMA
from lcsc.training.plan import RecordPlan
from lcsc.units import human_bytes

__all__ = ["CheckpointRecorder", "STORAGE_DTYPES"]

STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_HEADER_BYTES = 64 * 1024


class CheckpointRecorder:
    """Write ``RUN_DIR/windows/<end>/ckpt-<step>.safetensors`` and ``RUN_DIR/ema/<name>/ema-<end>.safetensors``.

    ``ema`` shares the trainer's :class:`MultiEMA`; otherwise ``ema_half_lives``/``ema_rates`` make one that
    :meth:`step` updates. ``config`` (default: ``model.config.to_dict()`` when present) goes into every file's
    metadata with its hash; ``metadata`` (str → str) is added to every file. EMA snapshots are written at the
    window ends and at ``ema_steps``. Power EMAs (``phema``, or one made from ``phema_sigma_rels`` that :meth:`step`
    updates) are written as ``RUN_DIR/phema/<sigma-S>/phema-<step>.safetensors`` every ``phema_every`` steps
    (default ``total_steps // 32``, at least 1) and at the last step. Refuses to start when the planned
    files exceed ``disk_budget`` bytes or the free space.

    Every file is written atomically: a run killed or out of disk space mid-write leaves the files before it intact
    and no part-written file under a final name (a full disk raises :class:`~lcsc.errors.DiskFullError`). Temp
    files a killed run left behind are deleted when the next recorder on ``run_dir`` starts (``removed_temps``).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        model: nn.Module,
        total_steps: int,
        *,
        window: int | None = None,
        interval: int = 1,
        ends: list[int] | tuple[int, ...] = (),
        ema: MultiEMA | None = None,
        ema_half_lives=(),
        ema_rates=(),
        config: dict[str, Any] | None = None,
        batch_size: int | None = None,
        storage_dtype: str = "float32",
        disk_budget: int | None = None,
        metadata: dict[str, str] | None = None,
        ema_steps: list[int] | tuple[int, ...] = (),
        phema: PowerEMA | None = None,
        phema_sigma_rels=(),
        phema_every: int | None = None,
        window_starts: bool = True,
    ) -> None:
        if storage_dtype not in STORAGE_DTYPES:
            raise ConfigError(f"storage dtype {storage_dtype!r} must be one of {sorted(STORAGE_DTYPES)}")
        self.run_dir = Path(run_dir)
        self.model = model
        self.plan = RecordPlan(total_steps, window or min(100 * interval, total_steps), interval, tuple(ends))
        self.owns_ema = ema is None
        self.ema = ema if ema is not None else MultiEMA(model, ema_half_lives, ema_rates)
        if config is None and hasattr(model, "config") and hasattr(model.config, "to_dict"):
            config = model.config.to_dict()
        self.config = config
        self.batch_size = batch_size
        self.dtype = STORAGE_DTYPES[storage_dtype]
        self.disk_budget = disk_budget
        self.metadata = dict(metadata or {})
        bad = [s for s in ema_steps if not 1 <= int(s) <= total_steps]
        if bad:
            raise ConfigError(f"EMA snapshot steps {bad} are outside the run's steps 1..{total_steps}")
        self.start_steps = self.plan.start_steps() if window_starts and len(self.ema) else frozenset()
        self.ema_steps_without_starts = frozenset(int(s) for s in ema_steps) | frozenset(self.plan.ends)
        self.ema_steps = self.ema_steps_without_starts | (self.start_steps - {0})
        self.owns_phema = phema is None
        self.phema = phema if phema is not None else PowerEMA(model, phema_sigma_rels)
        phema_steps = _phema_steps(total_steps, phema_every)
        self.phema_steps = phema_steps if len(self.phema) else frozenset()
        self.written: list[Path] = []
        self.removed_temps = _remove_stale_temps(self.run_dir)
        self.check_disk()
        if 0 in self.start_steps and self._fresh():
            self.written += self._save_ema(0, 0)

    def _fresh(self) -> bool:
        """A run that has written no window checkpoint yet and whose EMAs still equal the model (nothing trained)."""
        if any((self.run_dir / "windows").glob("*/*.safetensors")):
            return False
        live = self.model.state_dict()
        return all(torch.equal(t, live[k]) for ts in self.ema.shadows.values() for k, t in zip(self.ema.keys, ts))

    def bytes_needed(self) -> int:
        """Bytes the planned raw checkpoints, EMA snapshots (window starts included) and power-EMA snapshots take."""
        sd = self.model.state_dict()
        raw = sum(v.numel() * (self.dtype.itemsize if v.is_floating_point() else v.element_size()) for v in sd.values())
        full = sum(v.numel() * v.element_size() for v in sd.values())
        n_raw = sum(len(s) for s in self.plan.steps().values())
        n_full = len(self.ema_steps | self.start_steps) * len(self.ema) + len(self.phema_steps) * len(self.phema)
        return n_raw * (raw + _HEADER_BYTES) + n_full * (full + _HEADER_BYTES)

    def start_snapshot_bytes(self) -> int:
        """Bytes of the window-start EMA snapshots alone (part of :meth:`bytes_needed`)."""
        extra = self.start_steps - self.ema_steps_without_starts
        full = sum(v.numel() * v.element_size() for v in self.model.state_dict().values())
        return len(extra) * len(self.ema) * (full + _HEADER_BYTES)

    def check_disk(self) -> None:
        """Raise :class:`ConfigError` naming how much is needed (and how much of it the window-start EMA snapshots
        take) when the budget or the free space is too small."""
        need = self.bytes_needed()
        starts = self.start_snapshot_bytes()
        part = f" ({human_bytes(starts)} of it window-start EMA snapshots)" if starts else ""
        if self.disk_budget is not None and need > self.disk_budget:
            raise ConfigError(f"recording needs {human_bytes(need)}{part} in {self.run_dir} but the disk budget is "
                              f"{human_bytes(self.disk_budget)}; raise the interval, shorten the windows or store float16")
        probe = self.run_dir
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        if need > free:
            raise ConfigError(f"recording needs {human_bytes(need)}{part} in {self.run_dir} but only {human_bytes(free)} "
                              "is free")

    def step(self, step: int, images_seen: int | None = None) -> list[Path]:
        """Call after optimizer step ``step`` (1-based). Updates owned EMAs; writes what the plan asks for."""
        if self.owns_ema:
            self.ema.update()
        if self.owns_phema:
            self.phema.update(step)
        if images_seen is None and self.batch_size is not None:
            images_seen = step * self.batch_size
        written = self._save_raw(step, images_seen)
        if step in self.ema_steps:
            written += self._save_ema(step, images_seen)
        if step in self.phema_steps:
            written += self._save_phema(step, images_seen)
        self.written += written
        return written

    def _save_raw(self, step: int, images_seen: int | None) -> list[Path]:
        ends = self.plan.windows_of(step)
        if not ends:
            return []
        first = self.run_dir / "windows" / str(ends[0]) / checkpoint_name(step)
        save_checkpoint(first, self.model.state_dict(), step=step, images_seen=images_seen, config=self.config,
                        dtype=self.dtype, extra=self.metadata)
        paths = [first]
        for end in ends[1:]:
            paths.append(_link_or_copy(first, self.run_dir / "windows" / str(end) / checkpoint_name(step)))
        return paths

    def _save_ema(self, step: int, images_seen: int | None) -> list[Path]:
        paths = []
        for name, rate in self.ema.rates.items():
            path = self.run_dir / "ema" / name / checkpoint_name(step, prefix="ema")
            save_checkpoint(path, self.ema.state_dict_for(name), step=step, images_seen=images_seen,
                            ema_rate=rate, config=self.config, extra={**self.metadata, "ema_name": name})
            paths.append(path)
        return paths

    def _save_phema(self, step: int, images_seen: int | None) -> list[Path]:
        paths = []
        for name, sigma_rel in self.phema.sigma_rels.items():
            path = self.run_dir / "phema" / name / checkpoint_name(step, prefix="phema")
            extra = {**self.metadata, "phema_name": name, "sigma_rel": repr(float(sigma_rel)),
                     "gamma": repr(float(self.phema.gammas[name]))}
            save_checkpoint(path, self.phema.state_dict_for(name), step=step, images_seen=images_seen,
                            config=self.config, extra=extra)
            paths.append(path)
        return paths


def _remove_stale_temps(run_dir: Path) -> list[Path]:
    """Temp files a killed run left in its folder (one run writes a run folder, so none is live); stack caches
    beside the checkpoints are left to their own clean-up."""
    removed = remove_stale_temps(run_dir)
    for sub in ("windows", "ema", "phema", "state"):
        removed += remove_stale_temps(run_dir / sub, recursive=True, skip={".lcsc-cache"})
    return removed


def _phema_steps(total_steps: int, every: int | None) -> frozenset[int]:
    """Power-EMA snapshot steps: every ``every`` steps (default ``total_steps // 32``, at least 1) and the last."""
    if every is None:
        every = max(1, total_steps // 32)
    if int(every) < 1:
        raise ConfigError(f"power-EMA snapshot interval phema_every={every} must be >= 1 step")
    return frozenset(range(int(every), total_steps + 1, int(every))) | {total_steps}


def _link_or_copy(src: Path, dst: Path) -> Path:
    """Hard-link ``src`` to ``dst`` (a step shared by overlapping windows), copying where links are refused; either
    way through a temp name renamed over ``dst``, so ``dst`` is never missing or part-written."""
    with contextlib.suppress(OSError):
        if os.path.samefile(src, dst):
            return dst
    with atomic_path(dst, suffix=src.suffix) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return dst
