"""The demo's judge: FD_digits search objectives, and held-out scoring of any state over several noise seeds."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lcsc import protocol
from lcsc.data import ImageData
from lcsc.demo.config import DemoConfig
from lcsc.errors import ConfigError
from lcsc.generate import generate
from lcsc.metrics import evaluate_images, reference_set
from lcsc.metrics.spaces import feature_space
from lcsc.objectives import FDObjective, MeanObjective
from lcsc.objectives.base import VALIDATION_SEED_OFFSET, noise_fingerprint

__all__ = ["Scorer", "HeldOutScore", "held_out_seeds", "check_seed_separation"]


def held_out_seeds(cfg: DemoConfig) -> tuple[int, ...]:
    """The demo's held-out noise seeds (``cfg.eval_seeds`` of them; :func:`lcsc.protocol.held_out_seeds`)."""
    return protocol.held_out_seeds(cfg.seed, cfg.eval_seeds)


def check_seed_separation(cfg: DemoConfig) -> dict[str, set[str]]:
    """Noise fingerprints of the search (and its validation) seeds and of the held-out seeds; a ConfigError if any
    held-out noise equals a search noise (compared as noise, not as seed integers)."""
    fp = {s: noise_fingerprint(torch.Generator().manual_seed(s)) for s in
          (cfg.seed, cfg.seed + VALIDATION_SEED_OFFSET, *held_out_seeds(cfg))}
    search = {fp[cfg.seed], fp[cfg.seed + VALIDATION_SEED_OFFSET]}
    held = {fp[s] for s in held_out_seeds(cfg)}
    if search & held or len(held) != cfg.eval_seeds:
        raise ConfigError(f"demo seed {cfg.seed}: a held-out noise seed {held_out_seeds(cfg)} draws the same noise as "
                          "a search seed or another held-out seed; choose another --seed")
    return {"search": search, "held_out": held}


@dataclass(frozen=True)
class HeldOutScore:
    """Held-out metrics of one state: FD_digits, FD2 and FD3 (mean, std over seeds); KID, precision, recall (means).
    FD2 and FD3 are the independent digits feature spaces the demo's search never sees."""

    fd_mean: float
    fd_std: float
    fd2_mean: float
    fd2_std: float
    kid: float
    precision: float
    recall: float
    fid: float | None = None
    seeds: tuple[int, ...] = ()
    fd_per_seed: tuple[float, ...] = ()
    fd3_mean: float = float("nan")
    fd3_std: float = float("nan")


class Scorer:
    """Feature spaces and reference sets built once; search objectives on ``seed``; held-out on other seeds."""

    def __init__(self, cfg: DemoConfig, data: ImageData, progress: bool = False) -> None:
        self.cfg, self.progress = cfg, progress
        self.digits = feature_space("digits", cfg.device)
        self.digits2 = feature_space("digits2", cfg.device)
        self.digits3 = feature_space("digits3", cfg.device)
        self.ref = reference_set(data, self.digits)
        self.ref2 = reference_set(data, self.digits2)
        self.ref3 = reference_set(data, self.digits3)
        self.inception = feature_space("inception", cfg.device) if cfg.inception else None
        self.ref_inc = reference_set(data, self.inception, progress=progress) if self.inception else None
        check_seed_separation(cfg)
        self.seeds = held_out_seeds(cfg)
        self.image_shape = tuple(data.images.shape[1:])

    def objective(self, model: nn.Module, nfe: int) -> FDObjective:
        """FD_digits on the fixed search noise (seed ``cfg.seed``) at ``nfe``."""
        return FDObjective(copy.deepcopy(model), self.digits, self.ref, num_samples=self.cfg.search_samples,
                           nfe=nfe, device=self.cfg.device, noise_seed=self.cfg.seed, name="fd_digits")

    def search_objective(self, model: nn.Module, nfe: int):
        """The LCSC search's objective: FD_digits, or the calibrated mean (or worst) of FD_digits and FD2 on the same
        noise."""
        first = self.objective(model, nfe)
        if self.cfg.search_objective == "fd-digits":
            return first
        second = FDObjective(first.model, self.digits2, self.ref2, num_samples=self.cfg.search_samples, nfe=nfe,
                             device=self.cfg.device, noise_seed=self.cfg.seed, name="fd_digits2")
        return MeanObjective([first, second], reduce=self.cfg.search_objective.partition(":")[0])

    def samples(self, model: nn.Module, state: dict[str, torch.Tensor], nfe: int, seed: int, n: int) -> torch.Tensor:
        model.load_state_dict(state)
        return generate(model, n, seed, nfe=nfe, device=self.cfg.device)

    def held_out(self, model: nn.Module, state: dict[str, torch.Tensor], nfe: int, full: bool = True) -> HeldOutScore:
        """Score ``state`` on every held-out seed (never the search seed); ``full=False``: FDs only (KID, precision
        and recall NaN)."""
        rows = []
        for seed in self.seeds:
            images = self.samples(model, state, nfe, seed, self.cfg.eval_samples)
            a = evaluate_images(images, self.ref, self.digits, ("fd", "kid", "pr") if full else ("fd",),
                                kid_subsets=self.cfg.kid_subsets)
            b = evaluate_images(images, self.ref2, self.digits2, ("fd",))
            c = evaluate_images(images, self.ref3, self.digits3, ("fd",))
            nan = float("nan")
            rows.append((a.fd, b.fd, nan if a.kid is None else a.kid, nan if a.precision is None else a.precision,
                         nan if a.recall is None else a.recall, c.fd))
        r = np.array(rows, dtype=np.float64)
        fid = None
        if self.inception is not None and full:
            images = self.samples(model, state, nfe, self.seeds[0], self.cfg.inception_samples)
            fid = evaluate_images(images, self.ref_inc, self.inception, ("fd",), progress=self.progress).fd
        return HeldOutScore(fd_mean=float(r[:, 0].mean()), fd_std=float(r[:, 0].std()), fd2_mean=float(r[:, 1].mean()),
                            fd2_std=float(r[:, 1].std()), kid=float(r[:, 2].mean()), precision=float(r[:, 3].mean()),
                            recall=float(r[:, 4].mean()), fid=fid, seeds=self.seeds,
                            fd_per_seed=tuple(float(v) for v in r[:, 0]), fd3_mean=float(r[:, 5].mean()),
                            fd3_std=float(r[:, 5].std()))
