# Faster-DM-training paper (Towards Faster Training of DMs), Sec. 3.1 / Table 1 / Fig. 1: the consistency phenomenon.
"""Consistency: do different models map the *same* noise to similar images? Pairwise PSNR of same-noise samples.

Every model is sampled with a deterministic sampler (DDIM / DPM-Solver for DMs, a 1-step CM) from the same x_T
(drawn from one seeded CPU generator). For each pair (i, j) the per-image PSNR = 10·log10(MAX² / MSE) with images in
[−1, 1], so MAX = 2, is averaged (mean and median) over the samples. The baseline pairs model i's samples on seed s
with model j's samples on an unrelated seed s' ≠ s: the paper's point is same-noise PSNR ≫ unrelated-noise PSNR.
A model against itself (or two identical checkpoints) is infinite: kept as ``inf`` here, written as JSON ``null``
with ``infinite: true`` and drawn as "∞".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from lcsc.errors import ConfigError  # noqa: E402
from lcsc.generate import SamplingInputs, draw_inputs  # noqa: E402
from lcsc.generate import generate as _generate  # noqa: E402
from lcsc.models import load_model, read_model_config  # noqa: E402

__all__ = ["PSNR_MAX", "UNRELATED_SEED_OFFSET", "ModelSpec", "ConsistencyResult", "psnr", "psnr_matrix",
           "resolve_models", "same_inputs", "consistency", "plot_consistency", "sample_grid", "to_json",
           "markdown"]

PSNR_MAX = 2.0  # images in [−1, 1]: the peak-to-peak range
UNRELATED_SEED_OFFSET = 1_000_003  # the baseline's noise seed is seed + this


@dataclass(frozen=True)
class ModelSpec:
    """One model to compare: a display ``label`` and its checkpoint ``path``."""

    label: str
    path: Path


@dataclass
class ConsistencyResult:
    """Pairwise PSNR (dB) of same-noise samples (``same_mean``/``same_median``, n×n, ``inf`` where identical) and of
    unrelated-noise samples (row model on ``seed``, column model on ``unrelated_seed``), plus the grid samples."""

    labels: list[str]
    paths: list[str]
    kinds: list[str]
    nfe: list[int]
    same_mean: np.ndarray
    same_median: np.ndarray
    unrelated_mean: np.ndarray
    unrelated_median: np.ndarray
    settings: dict[str, Any]
    grid: torch.Tensor = field(repr=False)  # (models, noises, C, H, W) same-noise samples

    @property
    def off_diagonal_same(self) -> float:
        """Mean of the same-noise mean-PSNR over pairs i ≠ j (``inf`` if any pair is identical)."""
        return _off_diagonal_mean(self.same_mean)

    @property
    def off_diagonal_unrelated(self) -> float:
        """The baseline: mean of the unrelated-noise mean-PSNR over pairs i ≠ j."""
        return _off_diagonal_mean(self.unrelated_mean)


def _off_diagonal_mean(m: np.ndarray) -> float:
    n = len(m)
    if n < 2:
        return float("nan")
    return float(m[~np.eye(n, dtype=bool)].mean())


def psnr(a: torch.Tensor, b: torch.Tensor, max_value: float = PSNR_MAX) -> torch.Tensor:
    """Per-image PSNR (dB) of two N×… batches: 10·log10(max² / MSE), ``inf`` where the images are equal."""
    if a.shape != b.shape:
        raise ConfigError(f"PSNR needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(max_value ** 2 / mse)  # mse 0 → inf


def psnr_matrix(rows: list[torch.Tensor], cols: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, median) over images of the per-image PSNR between ``rows[i]`` and ``cols[j]``, each n×n."""
    mean = np.zeros((len(rows), len(cols)))
    median = np.zeros_like(mean)
    for i, a in enumerate(rows):
        for j, b in enumerate(cols):
            p = psnr(a, b)
            mean[i, j] = float(p.mean())
            median[i, j] = float(p.median())
    return mean, median


def _checkpoint(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        last = path / "last.safetensors"
        if not last.is_file():
            raise ConfigError(f"{path}: a run folder needs last.safetensors; pass a checkpoint file instead")
        return last
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint file or run folder")
    return path


def _default_label(raw: Path, path: Path) -> str:
    if Path(raw).is_dir():
        return Path(raw).resolve().name
    return f"{path.parent.name}/{path.stem}" if path.stem == "last" else path.stem


def resolve_models(specs: list[str | Path]) -> list[ModelSpec]:
    """``name=path`` or ``path`` (a checkpoint, or a run folder meaning its last.safetensors) → :class:`ModelSpec`s
    with unique labels. Auto labels that collide become the full paths; duplicate explicit names are an error."""
    if len(specs) < 2:
        raise ConfigError(f"consistency needs at least 2 models, got {len(specs)}")
    out: list[tuple[str | None, Path, Path]] = []
    for spec in specs:
        name, sep, rest = str(spec).partition("=")
        name, raw = (name, Path(rest)) if sep and name and not Path(str(spec)).exists() else (None, Path(spec))
        out.append((name, raw, _checkpoint(raw)))
    labels = [name or _default_label(raw, path) for name, raw, path in out]
    for k, (name, _, path) in enumerate(out):
        if name is None and labels.count(labels[k]) > 1:
            labels[k] = str(path)
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise ConfigError(f"model labels must be unique; repeated: {', '.join(dup)} (use name=path)")
    return [ModelSpec(lab, path) for lab, (_, _, path) in zip(labels, out)]


def _check_shapes(specs: list[ModelSpec]) -> list:
    configs = [read_model_config(s.path) for s in specs]
    shapes = {(c.in_channels, c.resolution) for c in configs}
    if len(shapes) > 1:
        listing = "; ".join(f"{s.path}: {c.in_channels}×{c.resolution}×{c.resolution}" for s, c in zip(specs, configs))
        raise ConfigError(f"consistency needs models of one image shape, got {listing}")
    return configs


def same_inputs(config, n: int, seed: int, nfe: int) -> SamplingInputs:
    """The sampling inputs of ``config``'s model on ``seed``: x_T depends only on (seed, image shape) — it is exactly
    what :func:`lcsc.generate.generate` draws for an unconditional model — so every model gets the same noise."""
    base = dataclasses.replace(config, kind="dm", num_classes=0)
    noise = draw_inputs(base, n, seed).noise
    gen = torch.Generator().manual_seed(seed + 1)
    labels = torch.randint(0, config.num_classes, (n,), generator=gen) if config.num_classes > 0 else None
    step = None
    if config.kind == "cm" and nfe > 1:
        step = torch.randn((nfe - 1, *noise.shape), generator=gen)
    return SamplingInputs(noise, labels, step)


def _sample_all(specs, configs, nfes, n, seed, solver, device, desc) -> list[torch.Tensor]:
    out = []
    for spec, config, nfe in tqdm(list(zip(specs, configs, nfes)), desc=desc, leave=False):
        model = load_model(spec.path, device=device)
        inputs = same_inputs(config, n, seed, nfe)
        out.append(_generate(model, n, seed, nfe=nfe, solver=solver, inputs=inputs, device=device))
    return out


def consistency(models: list[str | Path | ModelSpec], *, samples: int = 256, seed: int = 0,
                dm_nfe: int = 20, cm_nfe: int = 1, solver: str = "dpm-solver", grid_noises: int = 8,
                device: str | torch.device = "cpu") -> ConsistencyResult:
    """Sample every model on the same noise (``seed``) and on unrelated noise (``seed`` + offset) and return the
    pairwise PSNR matrices. DMs use ``solver`` at ``dm_nfe`` steps, CMs ``cm_nfe`` steps (both deterministic for
    1-step CMs and DM ODE solvers)."""
    if samples < 1:
        raise ConfigError(f"--samples {samples} must be >= 1")
    if grid_noises < 1:
        raise ConfigError(f"--grid-noises {grid_noises} must be >= 1")
    specs = resolve_models([f"{m.label}={m.path}" if isinstance(m, ModelSpec) else m for m in models])
    configs = _check_shapes(specs)
    nfes = [dm_nfe if c.kind == "dm" else cm_nfe for c in configs]
    alt = seed + UNRELATED_SEED_OFFSET
    same = _sample_all(specs, configs, nfes, samples, seed, solver, device, "same noise")
    other = _sample_all(specs, configs, nfes, samples, alt, solver, device, "unrelated noise")
    s_mean, s_med = psnr_matrix(same, same)
    u_mean, u_med = psnr_matrix(same, other)
    k = min(grid_noises, samples)
    settings = {"samples": samples, "seed": seed, "unrelated_seed": alt, "dm_nfe": dm_nfe, "cm_nfe": cm_nfe,
                "solver": solver, "psnr_max": PSNR_MAX, "image_range": [-1, 1],
                "image_shape": [configs[0].in_channels, configs[0].resolution, configs[0].resolution],
                "grid_noises": k}
    return ConsistencyResult([s.label for s in specs], [str(s.path) for s in specs], [c.kind for c in configs],
                             nfes, s_mean, s_med, u_mean, u_med, settings, torch.stack([x[:k] for x in same]))


def _finite(m: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if math.isfinite(v) else None for v in row] for row in m]


def to_json(r: ConsistencyResult) -> dict[str, Any]:
    """The result as JSON data: matrices with ``inf`` → ``null`` and an ``infinite`` flag matrix."""
    flag = lambda m: [[bool(math.isinf(v)) for v in row] for row in m]  # noqa: E731
    off_same = r.off_diagonal_same
    return {"what": "consistency", "labels": r.labels, "paths": r.paths, "kinds": r.kinds, "nfe": r.nfe,
            "psnr_formula": "10*log10(MAX^2/MSE), MAX=2 (images in [-1,1]); mean/median over per-image PSNR",
            "same_noise": {"mean": _finite(r.same_mean), "median": _finite(r.same_median),
                           "infinite": flag(r.same_mean)},
            "unrelated_noise": {"mean": _finite(r.unrelated_mean), "median": _finite(r.unrelated_median),
                                "infinite": flag(r.unrelated_mean),
                                "note": "row model on seed, column model on unrelated_seed"},
            "off_diagonal_same_mean": off_same if math.isfinite(off_same) else None,
            "off_diagonal_same_infinite": math.isinf(off_same),
            "baseline_unrelated_mean": r.off_diagonal_unrelated,
            "settings": r.settings, "grid_rows": r.labels}


def _fmt(v: float) -> str:
    return "∞" if math.isinf(v) else f"{v:.1f}"


def _heatmap(ax, m: np.ndarray, labels: list[str], title: str, cols: list[str], vmin: float, vmax: float) -> None:
    shown = np.where(np.isinf(m), vmax, m)
    im = ax.imshow(shown, cmap="viridis", vmin=vmin, vmax=max(vmax, vmin + 1e-6))
    for i in range(len(m)):
        for j in range(len(m[0])):
            light = shown[i, j] < (vmin + vmax) / 2
            ax.text(j, i, _fmt(m[i, j]), ha="center", va="center", fontsize=8, color="white" if light else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_title(title, fontsize=9)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="PSNR (dB)")


def plot_consistency(r: ConsistencyResult):
    """Two annotated heatmaps: same-noise PSNR (∞ on the diagonal) and the unrelated-noise baseline."""
    n = len(r.labels)
    both = np.concatenate([r.same_mean.ravel(), r.unrelated_mean.ravel()])
    finite = both[np.isfinite(both)]
    lim = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)  # one colour scale for both
    fig, axes = plt.subplots(1, 2, figsize=(2 * (2.2 + 0.75 * n), 1.6 + 0.7 * n), squeeze=False)
    _heatmap(axes[0, 0], r.same_mean, r.labels, "same noise: mean PSNR (dB)", r.labels, *lim)
    _heatmap(axes[0, 1], r.unrelated_mean, r.labels, "unrelated noise (cols on seed')", r.labels, *lim)
    fig.suptitle(f"consistency: off-diagonal {_fmt(r.off_diagonal_same)} dB vs unrelated "
                 f"{_fmt(r.off_diagonal_unrelated)} dB ({r.settings['samples']} samples, MAX=2)", fontsize=9)
    fig.tight_layout()
    return fig


def sample_grid(r: ConsistencyResult):
    """The same-noise samples as one PIL image: rows = models (in ``r.labels`` order), columns = noises."""
    from lcsc.report.grid import image_grid

    m, k = r.grid.shape[:2]
    return image_grid(r.grid.reshape(m * k, *r.grid.shape[2:]), nrow=k)


def markdown(r: ConsistencyResult) -> str:
    """A short summary: the off-diagonal same-noise PSNR vs the unrelated-noise baseline, then the matrix."""
    s = r.settings
    lines = [
        "# Consistency phenomenon (faster-DM-training paper, Sec. 3.1)", "",
        f"{s['samples']} samples per model, seed {s['seed']} (baseline: seed {s['unrelated_seed']}); "
        f"DM {s['solver']} at {s['dm_nfe']} NFE, CM at {s['cm_nfe']} NFE. "
        "PSNR = 10·log10(MAX²/MSE) with images in [−1, 1], MAX = 2; mean of per-image PSNR.", "",
        f"- mean same-noise PSNR off the diagonal: **{_fmt(r.off_diagonal_same)} dB**",
        f"- unrelated-noise baseline: **{_fmt(r.off_diagonal_unrelated)} dB**", "",
        "| same noise (mean / median dB) | " + " | ".join(r.labels) + " |",
        "|---" * (len(r.labels) + 1) + "|",
    ]
    for i, lab in enumerate(r.labels):
        cells = [f"{_fmt(r.same_mean[i, j])} / {_fmt(r.same_median[i, j])}" for j in range(len(r.labels))]
        lines.append(f"| {lab} ({r.kinds[i]}, {r.nfe[i]} NFE) | " + " | ".join(cells) + " |")
    lines += ["", "`consistency_samples.png`: rows = " + ", ".join(r.labels) + "; columns = the same noises."]
    return "\n".join(lines)
