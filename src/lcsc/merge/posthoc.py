# Post-hoc EMA: Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models" (EDM2), Sec. 3.1 and App. C.2 (least-squares reconstruction of an EMA profile from power-EMA snapshots).
"""``PosthocEMA``: any EMA length after training, as Σ x_i θ̄_i of the power-EMA snapshots a run recorded.

    ph = PosthocEMA.open("runs/dm")                 # RUN_DIR/phema/sigma-*/phema-*.safetensors
    lo, hi = ph.sigma_rel_range(ph.steps[-1])       # what the snapshots can reconstruct at that step
    sd = ph.reconstruct(ph.steps[-1], sigma_rel=0.07)
    sd = ph.reconstruct(ph.steps[-1], half_life=200)   # an online EMA's profile over the iterates (below)

A ``half_life`` target H (iterations) at step T is not the online EMA itself. An online EMA of rate β = 0.5^(1/H)
started at the initial weights θ₀ holds θ̄_T = β^T θ₀ + Σ_{s=1}^{T} (1−β) β^(T−s) θ_s; snapshots average only the
training iterates θ_1…θ_T, so the target is that profile without the initial-weights share β^T (see
:func:`initial_weights_share`), renormalised to sum 1: q_s = (1−β) β^(T−s) / (1 − β^T). The two agree only when
T ≫ H; at H = 1280 and T = 800 the dropped share is 65 %. :attr:`Reconstruction.initial_share` records it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from lcsc.checkpoints.anchor_specs import register_phema_reconstruction
from lcsc.checkpoints.format import read_metadata
from lcsc.errors import CheckpointError, ConfigError
from lcsc.merge.profiles import (
    exponential_inner,
    power_gram,
    power_inner,
    power_norm2,
    profile_errors,
    solve_weights,
)
from lcsc.training.phema import SIGMA_REL_MAX, sigma_rel_to_gamma

__all__ = ["PROFILE_TOL", "PosthocEMA", "Reconstruction", "Snapshot", "initial_weights_share"]

PROFILE_TOL = 0.05  # largest relative profile error ‖Σ x_i p_i − p‖ / ‖p‖ counted as reconstructable
SIGMA_GRID = (0.002, 241)  # σ_rel scan: log grid from 0.002 to just below 1/√12, this many points
HALF_LIFE_POINTS = 121  # half-life scan: log grid from 1 to 10 × step


@dataclass(frozen=True)
class Snapshot:
    """One power-EMA snapshot file: its step, σ_rel and exponent γ (from its metadata)."""

    path: Path
    step: int
    sigma_rel: float
    gamma: float


@dataclass(frozen=True, eq=False)
class Reconstruction:
    """Weights ``weights[i]`` of snapshot ``paths[i]`` whose sum approximates ``target`` at ``step``.

    ``initial_share`` (half-life targets only): the online EMA's share β^T on the initial weights, left out of the
    target (which is renormalised over the iterates)."""

    paths: list[Path]
    weights: np.ndarray
    profile_error: float
    weight_sum: float
    step: int
    target: str
    sigma_rel: float | None = None
    half_life: float | None = None
    initial_share: float | None = None


def initial_weights_share(step: int, half_life: float) -> float:
    """β^T = 0.5^(T/H): the weight an online EMA of half-life ``half_life`` started at the initial weights still
    puts on them at ``step``; a half-life target drops it and renormalises the rest."""
    return float(0.5 ** (float(step) / float(half_life)))


def _read_snapshot(path: Path) -> Snapshot:
    meta = read_metadata(path)
    try:
        return Snapshot(path, int(meta["step"]), float(meta["sigma_rel"]), float(meta["gamma"]))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a power-EMA snapshot (metadata lacks step/sigma_rel/gamma: {exc})") from None


class PosthocEMA:
    """Reconstruct EMA profiles (a power profile of any σ_rel, or an online EMA's profile over the training
    iterates for a half-life, without its initial-weights share and renormalised: see the module text) from snapshots.

    Loaded snapshot files stay cached in the object (post-hoc EMA targets small models), so a sweep reads each once.
    """

    def __init__(self, snapshots: list[Snapshot], folder: str | os.PathLike = "", tol: float = PROFILE_TOL) -> None:
        if not snapshots:
            raise ConfigError(f"{folder}: no power-EMA snapshots given")
        if not 0 < tol < math.inf:
            raise ConfigError(f"profile error tolerance {tol} (--tol) must be a finite number > 0")
        self.snapshots = sorted(snapshots, key=lambda s: (s.step, s.sigma_rel))
        self.folder = Path(folder)
        self.tol = float(tol)
        self._tensors: dict[Path, dict[str, torch.Tensor]] = {}
        self._ranges: dict[tuple, list[tuple[float, float]]] = {}

    @classmethod
    def open(cls, run_dir: str | os.PathLike, tol: float = PROFILE_TOL) -> PosthocEMA:
        """The snapshots under ``run_dir/phema/*/phema-*.safetensors``."""
        if not Path(run_dir).is_dir():
            raise ConfigError(f"{run_dir}: {'not a folder' if Path(run_dir).exists() else 'no such folder'}; expected "
                              "a run folder holding phema/")
        folder = Path(run_dir) / "phema"
        paths = sorted(folder.glob("*/phema-*.safetensors"))
        if not paths:
            raise ConfigError(f"{folder}: no power-EMA snapshots (phema/<sigma-S>/phema-<step>.safetensors); record "
                              "them while training with `lcsc train … --phema-sigma-rels 0.05,0.10` "
                              "(RecordConfig.phema_sigma_rels, or CheckpointRecorder(phema_sigma_rels=…))")
        return cls([_read_snapshot(p) for p in paths], folder, tol)

    @property
    def sigma_rels(self) -> list[float]:
        """The stored σ_rels, sorted."""
        return sorted({s.sigma_rel for s in self.snapshots})

    @property
    def steps(self) -> list[int]:
        """The snapshot steps, sorted."""
        return sorted({s.step for s in self.snapshots})

    def _check_step(self, step: int) -> int:
        lo, hi = self.steps[0], self.steps[-1]
        if int(step) != step or not lo <= step <= hi:
            raise ConfigError(f"step {step} is outside the snapshots' steps [{lo}, {hi}] in {self.folder}")
        return int(step)

    def _basis(self, step: int) -> tuple[list[Snapshot], np.ndarray, np.ndarray, np.ndarray]:
        """Snapshots with t_i ≤ step, their t and γ arrays and their Gram matrix."""
        snaps = [s for s in self.snapshots if s.step <= step]
        t = np.array([s.step for s in snaps], dtype=np.float64)
        g = np.array([s.gamma for s in snaps], dtype=np.float64)
        return snaps, t, g, power_gram(t, g)

    def _target(self, t, g, step: int, sigma_rel: float | None, half_life: float | None):
        """``(b, ‖p‖²)`` of the target profile against the basis (t, g)."""
        if sigma_rel is not None:
            gt = sigma_rel_to_gamma(sigma_rel)
            return power_inner(t, g, float(step), gt), float(power_norm2(float(step), gt))
        return exponential_inner(t, g, step, half_life)

    def solve(self, step: int, *, sigma_rel: float | None = None, half_life: float | None = None) -> Reconstruction:
        """The least-squares weights for a target at ``step`` (no shortcut, no range check)."""
        _check_target(sigma_rel, half_life)
        step = self._check_step(step)
        snaps, t, g, gram = self._basis(step)
        b, norm2 = self._target(t, g, step, sigma_rel, half_life)
        x = solve_weights(gram, b)
        err = float(profile_errors(gram, b, x, norm2))
        share = None if half_life is None else initial_weights_share(step, half_life)
        return Reconstruction([s.path for s in snaps], x, err, float(x.sum()), int(step),
                              _describe(sigma_rel, half_life), sigma_rel, half_life, share)

    def sigma_rel_intervals(self, step: int, tol: float | None = None) -> list[tuple[float, float]]:
        """The σ_rel intervals reconstructable at ``step`` within ``tol`` (default ``self.tol``) that hold a stored
        σ_rel, scanned on a log grid over [0.002, 1/√12): one interval unless the stored σ_rels are too far apart."""
        step, tol = self._check_step(step), self.tol if tol is None else float(tol)
        key = ("sigma", step, tol)
        if key not in self._ranges:
            lo, n = SIGMA_GRID
            grid = np.unique(np.concatenate([np.geomspace(lo, SIGMA_REL_MAX * (1 - 1e-6), n), self.sigma_rels]))
            _, t, g, gram = self._basis(step)
            gt = np.array([sigma_rel_to_gamma(s) for s in grid])
            b = power_inner(t[:, None], g[:, None], float(step), gt[None, :])
            err = profile_errors(gram, b, solve_weights(gram, b), power_norm2(float(step), gt))
            anchors = [int(np.searchsorted(grid, s)) for s in self.sigma_rels]
            self._ranges[key] = self._runs(grid, err, anchors, tol, step, "σ_rel")
        return self._ranges[key]

    def sigma_rel_range(self, step: int, tol: float | None = None) -> tuple[float, float]:
        """``(lo, hi)``: the reconstructable σ_rel range at ``step`` (see :meth:`sigma_rel_intervals`; when those
        are several, the σ_rels between them are refused by :meth:`coefficients`)."""
        runs = self.sigma_rel_intervals(step, tol)
        return runs[0][0], runs[-1][1]

    def half_life_range(self, step: int, tol: float | None = None) -> tuple[float, float]:
        """The interval of half-lives (iterations) reconstructable at ``step`` within ``tol`` around the best one,
        scanned on a log grid from 1 to 10 × step."""
        step, tol = self._check_step(step), self.tol if tol is None else float(tol)
        key = ("half_life", step, tol)
        if key not in self._ranges:
            grid = np.geomspace(1.0, 10.0 * step, HALF_LIFE_POINTS)
            _, t, g, gram = self._basis(step)
            pairs = [exponential_inner(t, g, step, h) for h in grid]
            b = np.stack([p[0] for p in pairs], axis=1)
            err = profile_errors(gram, b, solve_weights(gram, b), np.array([p[1] for p in pairs]))
            self._ranges[key] = self._runs(grid, err, [int(np.argmin(err))], tol, step, "half-life")
        return self._ranges[key][0]

    def _runs(self, grid, err, anchors: list[int], tol: float, step: int, what: str) -> list[tuple[float, float]]:
        """The maximal grid runs of error ≤ tol that hold an anchor point, sorted."""
        ok = err <= tol
        runs = set()
        for a in (a for a in anchors if ok[a]):
            lo, hi = a, a
            while lo > 0 and ok[lo - 1]:
                lo -= 1
            while hi < len(grid) - 1 and ok[hi + 1]:
                hi += 1
            runs.add((float(grid[lo]), float(grid[hi])))
        if not runs:
            below = [s for s in self.steps if s <= step]
            raise ConfigError(f"no {what} can be reconstructed at step {step} within profile error {tol:g} from the "
                              f"snapshots at steps ≤ {step} (last {below[-1]}; snapshot steps {_steps_text(self.steps)})"
                              "; use a later snapshot step")
        return sorted(runs)

    def reconstructable(self, step: int, sigma_rel: float) -> bool:
        """Whether ``sigma_rel`` lies in one of the :meth:`sigma_rel_intervals` at ``step``."""
        return any(lo <= sigma_rel <= hi for lo, hi in self.sigma_rel_intervals(step))

    def coefficients(self, step: int, *, sigma_rel: float | None = None,
                     half_life: float | None = None) -> Reconstruction:
        """Snapshot weights for the target at ``step`` (exactly one of ``sigma_rel`` / ``half_life``)."""
        _check_target(sigma_rel, half_life)
        step = self._check_step(step)
        if sigma_rel is not None:
            exact = [s for s in self.snapshots if s.step == step and abs(s.sigma_rel - sigma_rel) <= 1e-9]
            if exact:
                return Reconstruction([exact[0].path], np.ones(1), 0.0, 1.0, step, _describe(sigma_rel, None),
                                      sigma_rel, None)
            self._check_sigma_rel(step, sigma_rel)
        else:
            lo, hi = self.half_life_range(step)
            if not lo <= half_life <= hi:
                raise ConfigError(f"half-life {half_life:g} is outside the reconstructable range [{lo:.4g}, {hi:.4g}] "
                                  f"iterations at step {step} (profile error ≤ {self.tol:g}; stored sigma_rels "
                                  f"{', '.join(f'{s:g}' for s in self.sigma_rels)})")
        return self.solve(step, sigma_rel=sigma_rel, half_life=half_life)

    def _check_sigma_rel(self, step: int, sigma_rel: float) -> None:
        stored = ", ".join(f"{s:g}" for s in self.sigma_rels)
        lo, hi = self.sigma_rel_range(step)
        if not lo <= sigma_rel <= hi:
            raise ConfigError(f"sigma_rel {sigma_rel:g} is outside the reconstructable range [{lo:.4f}, {hi:.4f}] "
                              f"at step {step} (profile error ≤ {self.tol:g}; stored sigma_rels {stored})")
        if not self.reconstructable(step, sigma_rel):
            pieces = " ∪ ".join(f"[{a:.4f}, {b:.4f}]" for a, b in self.sigma_rel_intervals(step))
            raise ConfigError(f"sigma_rel {sigma_rel:g} falls in a gap of the reconstructable range {pieces} at step "
                              f"{step} (profile error > {self.tol:g}): the stored sigma_rels {stored} are too far apart "
                              "there; use a later step or record sigma_rels closer together")

    def _load(self, path: Path) -> dict[str, torch.Tensor]:
        if path not in self._tensors:
            self._tensors[path] = load_file(str(path))
        return self._tensors[path]

    def combine(self, rec: Reconstruction) -> dict[str, torch.Tensor]:
        """Σ x_i θ̄_i of a reconstruction (float64 accumulation, cast to the stored dtypes)."""
        states = [self._load(p) for p in rec.paths]
        last = states[-1]
        if len(states) == 1 and rec.weights[0] == 1.0:
            return {k: v.clone() for k, v in last.items()}
        for path, sd in zip(rec.paths, states):
            if sd.keys() != last.keys() or any(sd[k].shape != v.shape for k, v in last.items()):
                raise CheckpointError(f"{path}: its tensors differ from {rec.paths[-1]}'s (keys or shapes)")
        floats = [k for k, v in last.items() if v.is_floating_point()]
        acc = torch.zeros(sum(last[k].numel() for k in floats), dtype=torch.float64)
        for w, sd in zip(rec.weights, states):  # one flat add per snapshot: a small model has ~100 tensors
            acc.add_(torch.cat([sd[k].reshape(-1) for k in floats]).to(torch.float64), alpha=float(w))
        parts = dict(zip(floats, acc.split([last[k].numel() for k in floats])))
        return {k: parts[k].reshape(v.shape).to(v.dtype) if k in parts else v.clone() for k, v in last.items()}

    def reconstruct(self, step: int, *, sigma_rel: float | None = None,
                    half_life: float | None = None) -> dict[str, torch.Tensor]:
        """The reconstructed state dict (a stored profile at a snapshot step returns that snapshot exactly)."""
        return self.combine(self.coefficients(step, sigma_rel=sigma_rel, half_life=half_life))

    def reconstruct_many(self, step: int, targets: list[dict]) -> list[dict[str, torch.Tensor]]:
        """:meth:`reconstruct` for each target (``{"sigma_rel": S}`` or ``{"half_life": H}``); files load once."""
        recs = [self.coefficients(step, **_target_kwargs(t)) for t in targets]
        return [self.combine(r) for r in recs]


def _target_kwargs(target: dict) -> dict:
    unknown = set(target) - {"sigma_rel", "half_life"}
    if unknown:
        raise ConfigError(f"target {target}: unknown keys {sorted(unknown)}; use sigma_rel or half_life")
    return {"sigma_rel": target.get("sigma_rel"), "half_life": target.get("half_life")}


def _check_target(sigma_rel: float | None, half_life: float | None) -> None:
    if (sigma_rel is None) == (half_life is None):
        raise ConfigError("give exactly one of sigma_rel and half_life")
    if sigma_rel is not None and not 0.0 < sigma_rel < SIGMA_REL_MAX:
        raise ConfigError(f"sigma_rel {sigma_rel} must be in (0, {SIGMA_REL_MAX:.4f})")
    if half_life is not None and not (half_life > 0 and math.isfinite(half_life)):
        raise ConfigError(f"half-life {half_life} must be a positive number of iterations")


def _describe(sigma_rel: float | None, half_life: float | None) -> str:
    return f"sigma_rel={sigma_rel:g}" if sigma_rel is not None else f"half_life={half_life:g}"


def _steps_text(steps: list[int]) -> str:
    return ", ".join(map(str, steps)) if len(steps) <= 6 else f"{steps[0]}, {steps[1]}, …, {steps[-1]}"


def _anchor(run_dir: Path, step: int, sigma_rel: float) -> dict[str, torch.Tensor]:
    """A ``phema:SIGMA`` anchor's tensors (:mod:`lcsc.checkpoints.anchor_specs`, a layer down, calls it)."""
    return PosthocEMA.open(run_dir).reconstruct(step, sigma_rel=sigma_rel)


register_phema_reconstruction(_anchor)
