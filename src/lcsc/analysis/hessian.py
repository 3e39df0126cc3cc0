# Faster-DM-training paper, Sec. 3.3 and Fig. 3: top Hessian eigenvalues of the training loss by Lanczos.
"""Top-k Hessian eigenvalues of the fixed-batch training loss, never forming the Hessian.

Hessian-vector products by double backward (the gradient is built once with ``create_graph=True``; each HVP is
one ``torch.autograd.grad`` through it), wrapped in a ``scipy.sparse.linalg.LinearOperator`` for
``eigsh(which="LA")`` (implicitly restarted Lanczos). The eigenvalues are those of ∇²_θ L over the model's
trainable parameters, flattened in ``model.parameters()`` order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lcsc.analysis.fixed_loss import FixedLoss, checkpoint_label, load_checkpoint, make_fixed_loss
from lcsc.errors import ConfigError

__all__ = ["HessianEigs", "HessianResult", "make_hvp", "top_hessian_eigs", "analyze_hessian", "plot_hessian",
           "hessian_markdown", "QUICK", "DEFAULTS"]

# default size: batch 64, ≤ ncv + maxiter·(ncv − k) HVPs per checkpoint (≈ 0.2–0.5 s each on the demo DM, 2 cores)
DEFAULTS = {"k": 5, "batch": 64, "ncv": 20, "maxiter": 20, "tol": 1e-3}
QUICK = {"k": 3, "batch": 8, "ncv": 12, "maxiter": 10, "tol": 1e-3}


def make_hvp(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v ↦ H v`` for H = ∇²loss w.r.t. ``params`` (``v`` and the result flat, in the order of ``params``)."""
    params = list(params)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    sizes = [p.numel() for p in params]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        vs = [c.view_as(p).to(p.device, p.dtype) for c, p in zip(torch.split(v, sizes), params)]
        hv = torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True, allow_unused=True)
        return torch.cat([torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if h is None else h.reshape(-1)
                          for h, p in zip(hv, params)])

    return hvp


@dataclass
class HessianEigs:
    """Top eigenvalues (descending) of one checkpoint's loss Hessian and what it took."""

    checkpoint: str
    eigenvalues: list[float]
    loss: float
    n_params: int
    n_hvp: int
    converged: bool
    seconds: float


@dataclass
class HessianResult:
    """One :class:`HessianEigs` per checkpoint, with the evaluation settings."""

    entries: list[HessianEigs]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"settings": self.settings, "checkpoints": [asdict(e) for e in self.entries]}


def top_hessian_eigs(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor], k: int = 5, *, ncv: int = 20,
                     maxiter: int = 20, tol: float = 1e-3, seed: int = 0,
                     progress: bool = True) -> tuple[np.ndarray, int, bool, float]:
    """(top-``k`` eigenvalues descending, HVP count, converged, loss) by ``eigsh(which="LA")`` on HVPs.

    If Lanczos has not converged after ``maxiter`` restarts the eigenvalues that did converge are returned
    (possibly fewer than ``k``) and ``converged`` is False."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
    from tqdm.auto import tqdm

    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    if not 1 <= k < n:
        raise ConfigError(f"--k {k} must be in [1, {n - 1}] (the model has {n} parameters)")
    loss = loss_fn(model)
    hvp = make_hvp(loss, params)
    bar = tqdm(desc="HVPs", unit="hvp", disable=not progress, leave=False)
    count = [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        bar.update(1)
        x = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        return hvp(x).detach().cpu().double().numpy()

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(n)
    converged = True
    try:
        vals = eigsh(op, k=k, which="LA", ncv=min(max(ncv, 2 * k + 1), n), maxiter=maxiter, tol=tol, v0=v0,
                     return_eigenvectors=False)
    except ArpackNoConvergence as exc:
        vals, converged = exc.eigenvalues, False
    bar.close()
    return np.sort(np.asarray(vals, dtype=np.float64))[::-1], count[0], converged, float(loss.detach())


def analyze_hessian(checkpoints: Sequence[str | Path], *, k: int = 5, batch: int = 64, seed: int = 0,
                    timesteps: str = "uniform", ncv: int = 20, maxiter: int = 20, tol: float = 1e-3,
                    progress: bool = True) -> HessianResult:
    """Top-``k`` Hessian eigenvalues of each checkpoint's training loss on the same fixed batch."""
    if not checkpoints:
        raise ConfigError("analyze hessian needs at least one checkpoint")
    if maxiter < 1 or ncv < 2 or not tol >= 0:
        raise ConfigError(f"--maxiter {maxiter} must be >= 1, --ncv {ncv} >= 2 and --tol {tol} >= 0")
    entries = []
    for path in checkpoints:
        model = load_checkpoint(path)
        fixed: FixedLoss = make_fixed_loss(path, batch, seed, timesteps)
        t0 = time.perf_counter()
        vals, n_hvp, ok, loss = top_hessian_eigs(model, fixed, k, ncv=ncv, maxiter=maxiter, tol=tol, seed=seed,
                                                 progress=progress)
        entries.append(HessianEigs(str(path), [float(v) for v in vals], loss,
                                   sum(p.numel() for p in model.parameters()), n_hvp, ok,
                                   time.perf_counter() - t0))
    settings = {"k": k, "batch": batch, "seed": seed, "timesteps": timesteps, "ncv": ncv, "maxiter": maxiter,
                "tol": tol, "hvp": "double backward", "solver": "scipy eigsh(which='LA')"}
    return HessianResult(entries, settings)


def plot_hessian(result: HessianResult):
    """Eigenvalues per checkpoint: one column of markers per checkpoint, λ₁ highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(result.entries) + 2), 4))
    for i, e in enumerate(result.entries):
        vals = e.eigenvalues
        ax.scatter([i] * len(vals), vals, marker="_", s=400, color="C0")
        if vals:
            ax.scatter([i], [vals[0]], marker="o", color="C3", zorder=3, label="λ₁" if i == 0 else None)
    ax.set_xticks(range(len(result.entries)), [checkpoint_label(e.checkpoint) for e in result.entries], rotation=20,
                  ha="right", fontsize=8)
    ax.set_ylabel("Hessian eigenvalue")
    ax.set_title(f"Top-{result.settings.get('k')} Hessian eigenvalues (batch {result.settings.get('batch')}, "
                 f"{result.settings.get('timesteps')} t)")
    ax.grid(alpha=0.3)
    if result.entries:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def hessian_markdown(result: HessianResult) -> str:
    """A table: checkpoint, loss, eigenvalues, HVPs, converged."""
    s = result.settings
    lines = [f"# Hessian top-{s.get('k')} eigenvalues", "",
             f"Fixed batch {s.get('batch')} (seed {s.get('seed')}, {s.get('timesteps')} timesteps); Lanczos "
             f"(eigsh, ncv {s.get('ncv')}, maxiter {s.get('maxiter')}, tol {s.get('tol')}) on double-backward HVPs.",
             "", "| checkpoint | loss | eigenvalues (descending) | HVPs | converged | s |", "|---|---|---|---|---|---|"]
    for e in result.entries:
        vals = ", ".join(f"{v:.4g}" for v in e.eigenvalues)
        lines.append(f"| {e.checkpoint} | {e.loss:.5g} | {vals} | {e.n_hvp} | {e.converged} | {e.seconds:.1f} |")
    return "\n".join(lines)
