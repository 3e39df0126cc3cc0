"""``lcsc search --workers N [--ray-address ADDR]``: the options and the Ray pool built from a search's arguments."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from tqdm.auto import tqdm

from lcsc.errors import ConfigError
from lcsc.search.distributed import PoolSettings, RayPool, ray_available

__all__ = ["add_pool_options", "check_pool_options", "make_pool"]


def add_pool_options(p: argparse.ArgumentParser) -> None:
    """Distributed evaluation options (the optional ``ray`` extra)."""
    g = p.add_argument_group("distributed evaluation (pip install 'lcsc-diffusion[ray]')")
    g.add_argument("--workers", type=int, default=None,
                   help="score candidates on N Ray workers, each with its own model, objective and stack (a local "
                        "Ray instance unless --ray-address); the journal and results equal a serial run's")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="join a running Ray cluster (HOST:PORT, auto, or ray://HOST:PORT) instead of starting one")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker asks of Ray (default 1)")
    g.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs each worker asks of Ray, fractional allowed (default on cuda: a fair share, ≤ 1)")
    g.add_argument("--verbose", action="store_true",
                   help="show Ray's own logging (its warnings, the raylet's messages, the workers' output); by "
                        "default it is muted and a dead worker is reported in one line")


def check_pool_options(args: argparse.Namespace) -> None:
    """Refuse what a pool cannot do, before anything is built: workers score one candidate at a time, so a
    ``--batched-sampling`` search (a generation at once) would not give the serial search's scores."""
    pooled = getattr(args, "workers", None) is not None or getattr(args, "ray_address", None) is not None
    if pooled and getattr(args, "batched_sampling", False):
        raise ConfigError("--batched-sampling cannot be combined with --workers / --ray-address: Ray workers score "
                          "one candidate at a time, so the scores would differ from a serial batched search's; "
                          "drop one of them")


def make_pool(args: argparse.Namespace, merger_factory: Callable[[argparse.Namespace], Any],
              objective_factory: Callable[[argparse.Namespace], Any]):
    """A :class:`RayPool` when ``--workers``/``--ray-address`` ask for one, else a null context (serial search).

    The factories are called on each worker with a copy of the (resolved) arguments.
    """
    workers, address = getattr(args, "workers", None), getattr(args, "ray_address", None)
    if workers is None and address is None:
        return contextlib.nullcontext()
    if not ray_available():
        raise ConfigError("--workers / --ray-address need Ray, an optional extra: pip install 'lcsc-diffusion[ray]'")
    settings = PoolSettings(workers=workers if workers is not None else 2, address=address,
                            cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
                            device=str(args.device), verbose=bool(getattr(args, "verbose", False)))
    copy = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "func"})
    return RayPool(partial(merger_factory, copy), partial(objective_factory, copy), settings, on_notice=_notice)


def _notice(line: str) -> None:
    """One line on stderr, above the search's progress bar."""
    tqdm.write(line, file=sys.stderr)
