"""Measured unit costs of the experiments' time estimates: a few training steps, a timed generation and feature pass per
model kind (the demo's and the distillation benchmark's estimates multiply them by their planned work)."""

from __future__ import annotations

import tempfile
import time

import torch

from lcsc.experiment.config import DemoConfig
from lcsc.experiment.scoring import Scorer
from lcsc.models import ModelConfig, build_model

__all__ = ["unit_costs"]


def _timed(fn, repeat: int = 3, best: bool = False) -> float:
    """Mean (or, with ``best``, minimum) seconds of ``repeat`` calls after a warm-up."""
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) if best else sum(times) / repeat


def unit_costs(kind: str, cfg: DemoConfig, scorer: Scorer, data) -> dict[str, float]:
    """Seconds per training step, per sample per NFE, per sample for FD in the searched spaces / all three spaces,
    and for one KID + precision/recall at the held-out sample count."""
    from lcsc.generate import generate
    from lcsc.metrics import evaluate_images
    from lcsc.training import RecordConfig, TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(model=ModelConfig(kind=kind, channels=cfg.channels), iterations=64,
                         batch_size=cfg.batch_size, record=RecordConfig(window=1, interval=1), device=cfg.device,
                         ema_half_lives=cfg.half_lives)
        trainer = Trainer(tc, tmp, data=data, progress=False, resume=False)
        steps = iter(range(1, 64))
        step_s = _timed(lambda: trainer.train_step(next(steps)), 4)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what each model gets when the pair trains side by side
        try:
            step1_s = _timed(lambda: trainer.train_step(next(steps)), 4)
        finally:
            torch.set_num_threads(threads)
    model = build_model(ModelConfig(kind=kind, channels=cfg.channels)).to(cfg.device)
    n, nfe = min(cfg.eval_samples, 1000), (cfg.dm_nfe if kind == "dm" else cfg.cm_nfe)
    gen_s = _timed(lambda: generate(model, n, 0, nfe=nfe, device=cfg.device), 1) / (n * nfe)
    images = generate(model, n, 0, nfe=nfe, device=cfg.device)
    fd = [_timed(lambda sp=sp, ref=ref: evaluate_images(images, ref, sp, ("fd",)), 1) / n
          for sp, ref in ((scorer.digits, scorer.ref), (scorer.digits2, scorer.ref2), (scorer.digits3, scorer.ref3))]
    kidpr_s = _timed(lambda: evaluate_images(images, scorer.ref, scorer.digits, ("kid", "pr"),
                                             kid_subsets=cfg.kid_subsets), 1) * cfg.eval_samples / n
    searched = 2 if ":" in cfg.search_objective else 1
    return {"step": step_s, "step1": step1_s, "gen": gen_s, "fd_search": sum(fd[:searched]), "fd_all": sum(fd), "kidpr": kidpr_s}
