"""A recorded run laid out as :class:`lcsc.training.CheckpointRecorder` writes it, built directly (fast, exact).

RUN/windows/500/ckpt-<100…500>.safetensors, RUN/ema/hl-100/ema-<0, 500> (window-start snapshot at step 0 =
100 − interval 100), RUN/ema/rate-0.9/ema-<500> (no start snapshot), RUN/phema/sigma-0.05/phema-<300, 500>.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lcsc.checkpoints import checkpoint_name, save_checkpoint
from lcsc.training.phema import sigma_rel_to_gamma
from tests.conftest import make_states

STEPS = [100, 200, 300, 400, 500]


def make_run(root: Path, seed: int = 0) -> dict[str, object]:
    """Write the run; return its paths and the tensors each file holds."""
    run = root / "run"
    window = run / "windows" / "500"
    states = make_states(len(STEPS) + 5, seed=seed)
    win, (hl_start, hl_end, rate_end, ph_300, ph_500) = states[: len(STEPS)], states[len(STEPS):]
    for step, sd in zip(STEPS, win):
        save_checkpoint(window / checkpoint_name(step), sd, step=step)
    ema = run / "ema"
    rate = 1 - 1 / 144.77
    save_checkpoint(ema / "hl-100" / checkpoint_name(0, prefix="ema"), hl_start, step=0, ema_rate=rate,
                    extra={"ema_name": "hl-100"})
    save_checkpoint(ema / "hl-100" / checkpoint_name(500, prefix="ema"), hl_end, step=500, ema_rate=rate,
                    extra={"ema_name": "hl-100"})
    save_checkpoint(ema / "rate-0.9" / checkpoint_name(500, prefix="ema"), rate_end, step=500, ema_rate=0.9,
                    extra={"ema_name": "rate-0.9"})
    meta = {"phema_name": "sigma-0.05", "sigma_rel": repr(0.05), "gamma": repr(sigma_rel_to_gamma(0.05))}
    for step, sd in ((300, ph_300), (500, ph_500)):
        save_checkpoint(run / "phema" / "sigma-0.05" / checkpoint_name(step, prefix="phema"), sd, step=step,
                        extra=meta)
    return {"run": run, "window": window, "window_states": win, "hl_start": hl_start, "hl_end": hl_end,
            "rate_end": rate_end, "phema_500": ph_500}


def write_file(path: Path, state: dict[str, torch.Tensor], step: int | None = None) -> Path:
    """A stand-alone checkpoint file (an anchor given by path)."""
    return save_checkpoint(path, state, step=step if step is not None else 0)
