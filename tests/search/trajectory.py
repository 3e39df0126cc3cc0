"""A small classifier trained on digits with noisy SGD, checkpoints saved along its trajectory, and data splits."""

from __future__ import annotations

from pathlib import Path

import torch
from sklearn.datasets import load_digits

from lcsc.checkpoints import checkpoint_name, save_checkpoint


def splits(seed: int = 0):
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    a, b = int(0.6 * len(x)), int(0.8 * len(x))
    return (x[perm[:a]], y[perm[:a]]), (x[perm[a:b]], y[perm[a:b]]), (x[perm[b:]], y[perm[b:]])


def model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def _sgd_step(net, opt, loss_fn, x, y, gen: torch.Generator, batch: int = 8) -> None:
    idx = torch.randint(0, len(x), (batch,), generator=gen)
    loss = loss_fn(net(x[idx]), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()


def train(folder: Path, iterations: int = 600, window: int = 300, interval: int = 10, seed: int = 0,
          ema_rates: tuple[float, ...] = ()) -> dict[float, dict[str, torch.Tensor]]:  # fmt: skip
    """Noisy SGD (lr 0.5, batch 8); save every ``interval`` in the last ``window``; return online EMAs started at
    the first checkpoint of the window, updated every iteration."""
    (xtr, ytr), _, _ = splits()
    torch.manual_seed(seed)
    net, gen = model(), torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    first = iterations - window + interval
    emas: dict[float, dict[str, torch.Tensor]] = {}
    for step in range(1, iterations + 1):
        _sgd_step(net, opt, torch.nn.functional.cross_entropy, xtr, ytr, gen)
        if step == first:
            emas = {r: {k: v.detach().clone() for k, v in net.state_dict().items()} for r in ema_rates}
        elif step > first:
            for r, ema in emas.items():
                for k, v in net.state_dict().items():
                    ema[k].mul_(r).add_(v.detach(), alpha=1 - r)
        if step >= first and (step - first) % interval == 0:
            save_checkpoint(folder / checkpoint_name(step), net.state_dict(), step=step)
    return emas


REG_DIM = 16


def _teacher() -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(REG_DIM, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    for p in net.parameters():
        p.data.normal_(generator=g)
    return net


def regression_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy teacher-network regression data; different seeds give independent splits."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, REG_DIM, generator=g)
    with torch.no_grad():
        y = _teacher()(x) + 0.5 * torch.randn(n, 1, generator=g)
    return x, y


def regression_student() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(REG_DIM, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))


def train_regression(folder: Path, iterations: int = 1000, window: int = 400, interval: int = 10) -> None:
    """Noisy SGD (lr 0.05, batch 8) on 5,000 examples; a checkpoint every ``interval`` in the last ``window``."""
    xtr, ytr = regression_data(5000, 1)
    torch.manual_seed(0)
    net, gen = regression_student(), torch.Generator().manual_seed(5)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for step in range(1, iterations + 1):
        _sgd_step(net, opt, torch.nn.functional.mse_loss, xtr, ytr, gen)
        if step > iterations - window and step % interval == 0:
            save_checkpoint(folder / checkpoint_name(step), net.state_dict(), step=step)
