"""The demo's judge: FD_digits search objectives, and held-out scoring of any state over several noise seeds."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lcsc import protocol
from lcsc.data import ImageData
from lcsc.errors import ConfigError
from lcsc.experiment.config import DemoConfig
from lcsc.generate import generate
from lcsc.metrics import evaluate_images, reference_set
from lcsc.metrics.spaces import feature_space
from lcsc.objectives import FDObjective, MeanObjective
from lcsc.objectives.base import VALIDATION_SEED_OFFSET, noise_fingerprint

__all__ = ["Scorer", "HeldOutScore", "check_seed_separation"]


def check_seed_separation(cfg: DemoConfig) -> dict[str, set[str]]:
    """Noise fingerprints of the search (and its validation) seeds and of the held-out seeds; a ConfigError if any
    held-out noise equals a search noise (compared as noise, not as seed integers)."""
    fp = {s: noise_fingerprint(torch.Generator().manual_seed(s)) for s in
          (cfg.seed, cfg.seed + VALIDATION_SEED_OFFSET, *cfg.held_out_seeds)}
    search = {fp[cfg.seed], fp[cfg.seed + VALIDATION_SEED_OFFSET]}
    held = {fp[s] for s in cfg.held_out_seeds}
    if search & held or len(held) != cfg.eval_seeds:
        raise ConfigError(f"demo seed {cfg.seed}: a held-out noise seed {cfg.held_out_seeds} draws the same noise as "
                          "a search seed or another held-out seed; choose another --seed")
    return {"search": search, "held_out": held}


@dataclass(frozen=True)
class HeldOutScore:
    """Held-out metrics of one state: FD_digits, FD2, FD3 and FD4 (mean, std over seeds); KID, precision, recall
    (means). FD3 is a decision space the default search never sees; FD4 (a ViT) is report-only (:mod:`lcsc.protocol`),
    scored on report noise only (NaN on check noise)."""

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
    fd4_mean: float = float("nan")
    fd4_std: float = float("nan")


class Scorer:
    """Feature spaces and reference sets built once: search objectives on the search noise (``cfg.seed``), FD in any
    decision space on any noise (the benchmarks' judge), and held-out rows. The report-only space FD4 is built on
    first use by :meth:`held_out` on report noise, never before (so never inside decision code)."""

    def __init__(self, cfg: DemoConfig, data: ImageData, progress: bool = False) -> None:
        self.cfg, self.progress, self.data = cfg, progress, data
        self.spaces = {name: feature_space(name, cfg.device) for name in protocol.DECISION_SPACES}
        self.refs = {name: reference_set(data, sp) for name, sp in self.spaces.items()}
        self.digits, self.digits2, self.digits3 = (self.spaces[n] for n in protocol.DECISION_SPACES)
        self.ref, self.ref2, self.ref3 = (self.refs[n] for n in protocol.DECISION_SPACES)
        self.inception = feature_space("inception", cfg.device) if cfg.inception else None
        self.ref_inc = reference_set(data, self.inception, progress=progress) if self.inception else None
        check_seed_separation(cfg)
        self.seeds = cfg.held_out_seeds
        self.image_shape = tuple(data.images.shape[1:])

    def fd(self, space: str, model: nn.Module, samples: int, nfe: int, seed: int) -> FDObjective:
        """FD in decision space ``space`` on noise ``seed`` (a deep copy of ``model`` is owned by the objective)."""
        return FDObjective(copy.deepcopy(model), self.spaces[space], self.refs[space], num_samples=samples, nfe=nfe,
                           device=self.cfg.device, noise_seed=seed, name="fd_digits" if space == "digits" else
                           f"fd_{space}")

    def objective(self, model: nn.Module, nfe: int) -> FDObjective:
        """FD_digits on the fixed search noise (seed ``cfg.seed``) at ``nfe``."""
        return self.fd("digits", model, self.cfg.search_samples, nfe, self.cfg.seed)

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

    def space_scores(self, model: nn.Module, state: dict[str, torch.Tensor], nfe: int, seeds, n: int) -> dict[str, float]:
        """Mean FD over noise ``seeds`` in every decision space (one image set per seed, scored in all of them)."""
        out: dict[str, list[float]] = {s: [] for s in self.spaces}
        for seed in seeds:
            images = self.samples(model, state, nfe, seed, n)
            for name in self.spaces:
                out[name].append(evaluate_images(images, self.refs[name], self.spaces[name], ("fd",)).fd)
        return {name: float(np.mean(v)) for name, v in out.items()}

    def _report_space(self):
        """FD4 (report-only), built on first use; None on check noise (a benchmark's judgement never sees it)."""
        if self.cfg.held_out_noise != "report":
            return None
        if not hasattr(self, "_fd4"):
            sp = feature_space(protocol.REPORT_SPACES[0], self.cfg.device)
            self._fd4 = (sp, reference_set(self.data, sp))
        return self._fd4

    def held_out(self, model: nn.Module, state: dict[str, torch.Tensor], nfe: int, full: bool = True) -> HeldOutScore:
        """Score ``state`` on every held-out seed (never the search seed); ``full=False``: FDs only (KID, precision
        and recall NaN)."""
        rows, report, nan = [], self._report_space(), float("nan")
        for seed in self.seeds:
            images = self.samples(model, state, nfe, seed, self.cfg.eval_samples)
            a = evaluate_images(images, self.ref, self.digits, ("fd", "kid", "pr") if full else ("fd",),
                                kid_subsets=self.cfg.kid_subsets)
            b = evaluate_images(images, self.ref2, self.digits2, ("fd",))
            c = evaluate_images(images, self.ref3, self.digits3, ("fd",))
            d = evaluate_images(images, report[1], report[0], ("fd",)).fd if report else nan
            rows.append((a.fd, b.fd, nan if a.kid is None else a.kid, nan if a.precision is None else a.precision,
                         nan if a.recall is None else a.recall, c.fd, d))
        r = np.array(rows, dtype=np.float64)
        fid = None
        if self.inception is not None and full:
            images = self.samples(model, state, nfe, self.seeds[0], self.cfg.inception_samples)
            fid = evaluate_images(images, self.ref_inc, self.inception, ("fd",), progress=self.progress).fd
        mean, std = r.mean(0), r.std(0)
        return HeldOutScore(fd_mean=float(mean[0]), fd_std=float(std[0]), fd2_mean=float(mean[1]),
                            fd2_std=float(std[1]), kid=float(mean[2]), precision=float(mean[3]),
                            recall=float(mean[4]), fid=fid, seeds=self.seeds,
                            fd_per_seed=tuple(float(v) for v in r[:, 0]), fd3_mean=float(mean[5]),
                            fd3_std=float(std[5]), fd4_mean=float(mean[6]), fd4_std=float(std[6]))
