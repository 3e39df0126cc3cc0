"""Shared fixtures: small networks and checkpoint folders written the ways users write them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lcsc.checkpoints import checkpoint_name, save_checkpoint


def small_net() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 10),
    )


def make_states(K: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """K state dicts of ``small_net`` with random weights (num_batches_tracked equal across them)."""
    gen = torch.Generator().manual_seed(seed)
    net = small_net()
    states = []
    for _ in range(K):
        sd = {}
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                sd[name] = torch.rand(t.shape, generator=gen) + 0.1
            elif t.is_floating_point():
                sd[name] = torch.randn(t.shape, generator=gen)
            else:
                sd[name] = t.clone()
        states.append(sd)
    return states


def write_states(
    folder: Path, states: list[dict[str, torch.Tensor]], steps: list[int] | None = None
) -> list[Path]:
    steps = steps or [100 * (k + 1) for k in range(len(states))]
    return [save_checkpoint(folder / checkpoint_name(s), sd, step=s) for s, sd in zip(steps, states)]


@pytest.fixture
def states() -> list[dict[str, torch.Tensor]]:
    return make_states(5)


@pytest.fixture
def ckpt_dir(tmp_path: Path, states) -> Path:
    folder = tmp_path / "ckpts"
    write_states(folder, states)
    return folder


if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n 2: one core per worker (and per process it starts)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _isolated_lcsc_cache(tmp_path_factory):
    """Feature weights and reference statistics go to a per-run cache, not the user's ~/.cache (shared by the
    workers of ``pytest -n``: each file is written atomically, so two workers building one write equal files)."""
    old = os.environ.get("LCSC_CACHE_DIR")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent / "lcsc-cache" if os.environ.get("PYTEST_XDIST_WORKER") else base / "lcsc-cache"
    shared.mkdir(parents=True, exist_ok=True)
    os.environ["LCSC_CACHE_DIR"] = str(shared)
    yield
    if old is None:
        os.environ.pop("LCSC_CACHE_DIR", None)
    else:
        os.environ["LCSC_CACHE_DIR"] = old


@pytest.fixture
def one_thread():
    """One intra-op thread: tiny models gain nothing from more, and they stall when the cores are busy."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
