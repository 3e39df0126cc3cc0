"""The trainer: DM (DDPM ε-loss) or CM (CT/CD) on an :class:`ImageData`, with EMAs, the recorder and resume."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lcsc.atomic import write_json
from lcsc.checkpoints.format import save_checkpoint
from lcsc.data import ImageData, load_data
from lcsc.errors import ConfigError, TrainingError
from lcsc.generate import generate
from lcsc.report.grid import save_image_grid
from lcsc.training import setup
from lcsc.training.config import TrainConfig
from lcsc.training.ema import MultiEMA, lerp_towards
from lcsc.training.log import LossLog, read_log
from lcsc.training.phema import PowerEMA
from lcsc.training.recorder import CheckpointRecorder
from lcsc.training.state import STATE_NAME, load_train_state, restore_generator, save_train_state

__all__ = ["Trainer", "TrainResult", "train", "RESUMABLE_CHANGES"]

# Config entries that may differ when a run is resumed (everything else must match the saved state).
RESUMABLE_CHANGES = {"device", "log_every", "save_every", "sample_count", "sample_nfe", "sample_solver"}


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    last_loss: float
    seconds: float
    samples: Path | None


class Trainer:
    """Build a run from a :class:`TrainConfig`; :meth:`run` trains to ``config.iterations`` (resuming if asked)."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, *, data: ImageData | None = None,
                 resume: bool = True, progress: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.data = data if data is not None else load_data(config.data, config.resolution)
        self.config = c = setup.resolve_config(config, self.data)
        self.device = torch.device(c.device)
        self.progress = progress
        self.model = setup.build_training_model(c, self.device)
        self.optimizer = setup.make_optimizer(c, self.model)
        self.schedule = setup.make_schedule(c)
        self.loss_fn = setup.make_loss(c, self.device)
        self.target = setup.make_target(c, self.model)
        self.ema = MultiEMA(self.model, c.ema_half_lives, c.ema_rates)
        self.phema = PowerEMA(self.model, c.record.phema_sigma_rels)
        self.data_gen = torch.Generator().manual_seed(c.seed + 1)
        self.noise_gen = torch.Generator(self.device).manual_seed(c.seed + 2)
        r = c.record
        self.recorder = CheckpointRecorder(
            self.run_dir, self.model, c.iterations, window=r.window, interval=r.interval, ends=r.ends,
            ema=self.ema, config=c.model.to_dict(), batch_size=c.batch_size, storage_dtype=r.storage_dtype,
            disk_budget=r.disk_budget, metadata=self.file_metadata(), ema_steps=r.ema_steps,
            phema=self.phema, phema_every=r.phema_every,
            window_starts=r.window_start_emas)
        self.step = self._saved_step = 0
        if resume and (self.run_dir / "state" / STATE_NAME).exists():
            self._restore()

    def file_metadata(self) -> dict[str, str]:
        """Metadata every checkpoint of the run carries besides the model config: the data it was trained on."""
        c = self.config
        return {"data": json.dumps({"spec": c.data, "resolution": c.resolution, **self.data.describe()})}

    def _restore(self) -> None:
        state = load_train_state(self.run_dir / "state" / STATE_NAME)
        saved, now = _plain(_with_defaults(state["config"])), _plain(self.config.to_dict())
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            raise ConfigError(f"{self.run_dir}: cannot resume, the config changed in {changed}; "
                              "use a new output folder or the saved settings (see train_config.json)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"])
        self.phema.load_state_dict(state.get("phema", {}))
        if self.target is not None:
            self.target.load_state_dict(state["target"])
        source = self.run_dir / "state" / STATE_NAME
        restore_generator(self.data_gen, state["rng"]["data"], source)
        restore_generator(self.noise_gen, state["rng"]["noise"], source)  # CUDA generators take CPU state too
        self.step = self._saved_step = int(state["step"])

    def save_state(self) -> Path:
        """Write the full training state at the current step (atomic)."""
        self._saved_step = self.step
        return save_train_state(
            self.run_dir / "state" / STATE_NAME, step=self.step, config=self.config.to_dict(),
            model=self.model.state_dict(), optimizer=self.optimizer.state_dict(), ema=self.ema.state_dict(),
            phema=self.phema.state_dict(),
            target=self.target.state_dict() if self.target is not None else None,
            rng={"data": self.data_gen.get_state(), "noise": self.noise_gen.get_state().cpu()})

    def train_step(self, step: int) -> dict[str, float]:
        """One optimiser update (``step`` is 1-based); returns the loss and the plug-ins' figures."""
        hp = self.schedule.apply(self.optimizer, step)
        x, labels = self.data.sample_batch(self.config.batch_size, self.data_gen)
        x = x.to(self.device)
        labels = labels.to(self.device) if labels is not None and self.config.model.num_classes else None
        loss, stats = self.loss_fn(self.model, x, labels, self.noise_gen, step, self.target)
        if not torch.isfinite(loss):
            raise TrainingError(f"{self.run_dir}: the loss is {float(loss.detach())} at step {step}; lower --lr or raise "
                                f"--warmup (the last saved state, step {self._saved_step}, is intact)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        if self.target is not None:
            lerp_towards(list(self.target.parameters()), list(self.model.parameters()),
                         self.config.consistency.target_ema)
        return {"loss": float(loss.detach()), **hp, **stats}

    def run(self, on_log=None) -> TrainResult:
        """Train from the current step to ``config.iterations``; write logs, checkpoints, state and samples."""
        c = self.config
        write_json(self.run_dir / "train_config.json", {**c.to_dict(), "data_info": self.data.describe()})
        log = LossLog(self.run_dir / "log.jsonl", resume_step=self.step)
        start, t0, acc = self.step, time.perf_counter(), []
        bar = tqdm(total=c.iterations, initial=self.step, desc=f"train {c.model.kind}", disable=not self.progress)
        try:
            for step in range(self.step + 1, c.iterations + 1):
                stats = self.train_step(step)
                self.step = step
                self.ema.update()
                self.phema.update(step)
                self.recorder.step(step)
                acc.append(stats["loss"])
                if step % c.log_every == 0 or step == c.iterations:
                    record = self._log_record(stats, acc, start, t0)
                    log.write(record)
                    bar.set_postfix(loss=f"{record['loss']:.4f}")
                    if on_log is not None:
                        on_log(record)
                    acc = []
                if step % c.save_every == 0 or step in self.recorder.ema_steps_without_starts or step == c.iterations:
                    self.save_state()
                bar.update(1)
        finally:
            bar.close()
            log.close()
        return self._finish(t0, acc)

    def _log_record(self, stats: dict[str, float], acc: list[float], start: int, t0: float) -> dict[str, Any]:
        elapsed = time.perf_counter() - t0
        return {**stats, "step": self.step, "loss": sum(acc) / len(acc), "images_seen": self.step * self.config.batch_size,
                "elapsed_s": round(elapsed, 3), "it_per_s": round((self.step - start) / max(elapsed, 1e-9), 3)}

    def _finish(self, t0: float, acc: list[float]) -> TrainResult:
        c = self.config
        save_checkpoint(self.run_dir / "last.safetensors", self.model.state_dict(), step=self.step,
                        images_seen=self.step * c.batch_size, config=c.model.to_dict(),
                        extra=self.file_metadata())
        samples = self.write_samples() if c.sample_count else None
        last = read_last_loss(self.run_dir / "log.jsonl")
        return TrainResult(self.run_dir, self.step, last, time.perf_counter() - t0, samples)

    def sampling_model(self) -> torch.nn.Module:
        """The first EMA (what people sample from) or the raw weights when no EMA is kept."""
        if not len(self.ema):
            return self.model
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.ema.state_dict_for(next(iter(self.ema.rates))))
        return model

    def write_samples(self) -> Path:
        """``samples.png``: a grid from the sampling model on a fixed seed (NFE: 20 DM / 1 CM unless configured)."""
        c = self.config
        images = generate(self.sampling_model(), c.sample_count, c.seed + 10_000, nfe=c.sample_nfe,
                          solver=c.sample_solver, device=self.device)
        return save_image_grid(images, self.run_dir / "samples.png")


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config with settings added since it was written filled in at their defaults (so older runs resume)."""
    try:
        return TrainConfig.from_dict(saved).to_dict()
    except (TypeError, KeyError, ValueError):
        return saved


def _plain(obj: Any) -> Any:
    """JSON round trip (tuples → lists) so saved and current configs compare by value."""
    return json.loads(json.dumps(obj))


def read_last_loss(path: Path) -> float:
    records = read_log(path)
    return float(records[-1]["loss"]) if records else float("nan")


def train(config: TrainConfig, run_dir: str | Path, *, data: ImageData | None = None, resume: bool = True,
          progress: bool = True) -> TrainResult:
    """Train a DM or CM as configured into ``run_dir`` (see :class:`Trainer`)."""
    return Trainer(config, run_dir, data=data, resume=resume, progress=progress).run()

