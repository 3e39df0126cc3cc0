"""Quickstart: record checkpoints of a small digits classifier, stack them, and merge a generation at once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lcsc.checkpoints import CheckpointStack, checkpoint_name, save_checkpoint
from lcsc.errors import ConfigError
from lcsc.merge import Coefficients, merge_many, save_merged

__all__ = [
    "QuickstartConfig",
    "QuickstartResult",
    "candidate_coefficients",
    "digits_split",
    "search_and_held_out",
    "quickstart_model",
    "run_quickstart",
]


@dataclass(frozen=True)
class QuickstartConfig:
    """A short noisy-SGD run on digits whose last ``window`` iterations are recorded every ``interval``."""

    iterations: int = 800
    window: int = 400
    interval: int = 10
    batch_size: int = 8
    lr: float = 0.8
    hidden: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.interval <= self.window <= self.iterations:
            raise ConfigError("quickstart needs 0 < interval <= window <= iterations")
        if self.window // self.interval < 2:
            raise ConfigError("quickstart window must hold at least two checkpoints")


@dataclass
class QuickstartResult:
    """Search-split loss, held-out loss/accuracy per candidate (the chosen one flagged), outputs and timings."""

    rows: list[dict] = field(default_factory=list)
    checkpoint_dir: Path | None = None
    stack_summary: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def digits_split(seed: int) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test): a fixed 80/20 split of the 1,797 digits, pixels in [0, 1]."""
    from sklearn.datasets import load_digits  # lazy: sklearn costs ~1 s at every lcsc start-up

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    return x[perm[:cut]], y[perm[:cut]], x[perm[cut:]], y[perm[cut:]]


def search_and_held_out(seed: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """The 20% test split cut in two disjoint halves: ``(search, held_out)``, each ``(x, y)``. Candidates are chosen
    on the search half; only the held-out half is reported."""
    _, _, x, y = digits_split(seed)
    half = len(x) // 2
    return (x[:half], y[:half]), (x[half:], y[half:])


def quickstart_model(hidden: int = 64) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))


def _train(cfg: QuickstartConfig, out: Path, xtr: torch.Tensor, ytr: torch.Tensor) -> Path:
    torch.manual_seed(cfg.seed)
    model, gen = quickstart_model(cfg.hidden), torch.Generator().manual_seed(cfg.seed + 1)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    ckpt_dir = out / "checkpoints"
    first = cfg.iterations - cfg.window + cfg.interval
    for step in tqdm(range(1, cfg.iterations + 1), desc="training digits MLP", unit="it"):
        idx = torch.randint(0, len(xtr), (cfg.batch_size,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= first and (step - first) % cfg.interval == 0:
            save_checkpoint(ckpt_dir / checkpoint_name(step), model.state_dict(), step=step,
                            images_seen=step * cfg.batch_size, config={"hidden": cfg.hidden})  # fmt: skip
    return ckpt_dir


def candidate_coefficients(K: int) -> dict[str, np.ndarray]:
    """Illustrative coefficient vectors (each sums to 1): last, uniform, recent half, an extrapolation."""
    last = np.eye(K)[-1]
    uniform = np.full(K, 1.0 / K)
    half = np.where(np.arange(K) >= K // 2, 1.0, 0.0)
    half /= half.sum()
    first_half = (1 - half * (K - K // 2)) / (K // 2) * (np.arange(K) < K // 2)
    return {"last checkpoint": last, "uniform average": uniform, "recent-half average": half,
            "extrapolated (1.5·recent − 0.5·early)": 1.5 * half - 0.5 * first_half}  # fmt: skip


@torch.no_grad()
def _evaluate(
    model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float]:
    model.load_state_dict(state)
    logits = model(x)
    return float(torch.nn.functional.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def run_quickstart(cfg: QuickstartConfig, out: str | Path) -> QuickstartResult:
    """Train, record, open the stack (memory-mapped cache), merge all candidates in one pass, evaluate, export."""
    out, res, t0 = Path(out), QuickstartResult(), time.perf_counter()
    xtr, ytr, _, _ = digits_split(cfg.seed)
    (xs, ys), (xh, yh) = search_and_held_out(cfg.seed)
    res.checkpoint_dir = _train(cfg, out, xtr, ytr)
    res.timings["train_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    stack = CheckpointStack.open(res.checkpoint_dir, progress=False)
    res.timings["stack_s"] = time.perf_counter() - t1
    res.stack_summary = stack.summary()
    names, coeffs = zip(*candidate_coefficients(stack.K).items())
    t2 = time.perf_counter()
    merged = merge_many(stack, np.stack(coeffs))
    res.timings["merge_many_s"] = time.perf_counter() - t2
    model = quickstart_model(cfg.hidden)
    for name, a, vector in zip(names, coeffs, merged):
        search_loss, _ = _evaluate(model, stack.state_dict(vector), xs, ys)
        loss, acc = _evaluate(model, stack.state_dict(vector), xh, yh)
        res.rows.append({"candidate": name, "search_loss": search_loss, "held_out_loss": loss,
                         "held_out_accuracy": acc, "min_coefficient": float(a.min()), "sum": float(a.sum())})  # fmt: skip
    best = min(range(len(names)), key=lambda i: res.rows[i]["search_loss"])  # chosen on the search split only
    for i, row in enumerate(res.rows):
        row["chosen"] = i == best
    best_coeffs = Coefficients(tuple(stack.steps), coeffs[best])
    best_coeffs.save(out / "best_coefficients.json")
    save_merged(out / "merged.safetensors", stack, stack.state_dict(merged[best]), best_coeffs)
    res.timings["total_s"] = time.perf_counter() - t0
    return res
