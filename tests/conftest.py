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


# Known slow tests (seconds on a quiet 2-core machine, 2026-12-07), by node-id prefix. Under ``pytest -n 2 --dist
# worksteal`` each worker first gets one contiguous half of the collection; the hook below starts both halves with
# their share of these, so no worker is left alone at the end with a long test (the suite used to end with ~5 min of
# one worker on the distillation resume test).
SLOW = {
    "tests/distill/test_distillation_resume.py::test_quick_benchmark_killed": 240,
    "tests/demo/test_demo.py::test_quick_demo_end_to_end": 200,
    "tests/scripts/test_gpu_check.py": 70,
    "tests/search/test_distributed.py": 120,
    "tests/search/test_cli_search.py::test_sigkill_anywhere": 150,
    "tests/cli/test_search_diffusers.py": 90,
    "tests/analysis/test_search_efficiency.py::test_search_efficiency_quick_smoke": 40,
    "tests/analysis/test_ablation.py": 50,
    "tests/cli/test_search_grad_cli.py::test_sigkill": 25,
    "tests/cli/test_eval_diffusers.py": 30,
    "tests/metrics/test_features.py": 50,
    "tests/metrics/test_inception_golden.py": 20,
    "tests/cli/test_eval_cli.py::test_search_on_two_ray_workers": 25,
}


def _slow_seconds(nodeid: str) -> float:
    return next((s for prefix, s in SLOW.items() if nodeid.startswith(prefix)), 0.0)


def pytest_collection_modifyitems(session, config, items) -> None:
    """Balanced contiguous shares for ``-n N`` (xdist's worksteal gives worker i the i-th share), slowest first in
    each; a module's slow tests stay together (they share module fixtures)."""
    workers = config.getoption("numprocesses", None)
    if not isinstance(workers, int) or workers < 2:
        return
    groups: dict[str, list] = {}
    for item in items:
        if _slow_seconds(item.nodeid):
            groups.setdefault(next(p for p in SLOW if item.nodeid.startswith(p)), []).append(item)
    shares: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for group in sorted(groups.values(), key=lambda g: -_slow_seconds(g[0].nodeid)):
        k = load.index(min(load))
        shares[k] += group
        load[k] += _slow_seconds(group[0].nodeid)
    taken = {id(i) for share in shares for i in share}
    rest = [i for i in items if id(i) not in taken]
    ordered, left = [], len(items)
    for k, share in enumerate(shares):  # the sizes xdist sends: what is left // the workers still to serve
        size = left // (workers - k)
        fill = max(0, size - len(share)) if k < workers - 1 else len(rest)
        ordered += share + rest[:fill]
        rest = rest[fill:]
        left -= len(share) + fill
    items[:] = ordered
