# Distributed candidate evaluation for the LCSC search (Liu et al., Eq. 8 / Algorithm 1) on Ray actors.
"""Score a generation's candidates on Ray workers, each owning its model, objective and checkpoint stack.

The driver sends each worker only the generation's coefficient matrix (a few kB) and the row to score; the worker
opens the stack itself (the memory-mapped cache the driver built) and merges the whole padded generation once, with
the same call a serial search makes, so its merged weights are bit-identical to a serial run's. Candidates go out
unordered, to whichever worker is free; results stream back to the driver, the journal's single writer, which
records them in candidate order. A worker that dies is replaced and its candidate retried on another worker (a
candidate that kills ``max_attempts`` workers is recorded as failed); nothing is recorded twice. Each death is
reported in one line to ``on_notice``; Ray's own driver output (its loggers, the raylet's multi-line warnings) is
muted while the pool runs unless ``PoolSettings.verbose``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lcsc.errors import ConfigError, LCSCError, first_line
from lcsc.search.ranking import FULL, RACE

__all__ = ["PoolSettings", "RayPool", "WorkerPoolError", "ray_available"]



class WorkerPoolError(LCSCError, RuntimeError):
    """The Ray workers cannot go on (all died, or none could start); the journal keeps every finished record."""


def ray_available() -> bool:
    """True when the optional ``ray`` extra is installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class PoolSettings:
    """How many workers, where, and what each asks of the cluster."""

    workers: int = 2
    address: str | None = None  # None: start a local Ray instance; "auto" or HOST:PORT or ray://…: join one
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None  # None: a fair share of the cluster's GPUs when device is cuda, else 0
    device: str = "cpu"  # where the workers' objectives run (decides the default GPU share)
    max_attempts: int = 3  # workers one candidate may kill before it is recorded as failed
    max_replacements: int | None = None  # dead workers replaced over the run (default 2 × workers)
    merge_budget_bytes: int = 2 << 30  # above this a worker merges one row at a time (not bit-equal to serial)
    connect_timeout_s: float = 5.0
    start_timeout_s: float = 900.0  # a worker builds its objective (reference statistics…) before it is ready
    verbose: bool = False  # Ray's own driver output: its loggers, raylet warnings, the workers' prints

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: needs at least 1 worker")
        if not self.cpus_per_worker > 0:
            raise ConfigError(f"--cpus-per-worker {self.cpus_per_worker:g}: must be > 0")
        if self.gpus_per_worker is not None and not self.gpus_per_worker >= 0:
            raise ConfigError(f"--gpus-per-worker {self.gpus_per_worker:g}: must be >= 0")
        if (self.gpus_per_worker or 0) > 1 and self.gpus_per_worker != int(self.gpus_per_worker):
            raise ConfigError(f"--gpus-per-worker {self.gpus_per_worker}: above 1 it must be a whole number")


class _Worker:
    """One Ray actor's state: its merger (own stack), its objectives, the current generation's merge."""

    def __init__(self, merger_factory: Callable[[], Any], objective_factory: Callable[[], Any],
                 race_samples: int | None, threads: int, merge_budget: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.race_samples, self.merge_budget, self.error = race_samples, merge_budget, None
        self._key: str | None = None
        self._states: list | None = None
        try:  # a failure is reported by identity(), in the worker's own words
            self.merger = merger_factory()
            self.objective = objective_factory()
            self._build_stages()
        except Exception as exc:  # noqa: BLE001
            self.error = first_line(exc, 300) if isinstance(exc, LCSCError) else f"{type(exc).__name__}: " \
                f"{first_line(exc, 300)}"

    def _build_stages(self) -> None:
        self.stages = {FULL: self.objective}
        if self.race_samples:
            self.stages[RACE] = self.objective.with_samples(self.race_samples)

    def identity(self) -> dict[str, Any]:
        """What the driver checks: the same checkpoints, the same objective noise."""
        import os

        if self.error is not None:
            return {"error": self.error, "host": socket.gethostname(), "pid": os.getpid()}
        fp = getattr(self.objective, "noise_fingerprint", None)
        return {"hashes": list(self.merger.hashes), "K": self.merger.K, "G": self.merger.G,
                "anchors": [a["sha256"] for a in getattr(self.merger, "anchors", None) or []],
                "noise_sha": fp() if fp else None, "host": socket.gethostname(), "pid": os.getpid()}

    def load_calibration(self, state: dict) -> None:
        self.objective.load_calibration(state)
        self._build_stages()

    def score(self, stage: str, key: str, A: np.ndarray, row: int) -> tuple[float | None, str | None, float]:
        """Score row ``row`` of the padded generation ``A`` at ``stage``: (score, error, seconds)."""
        from lcsc.search.evaluator import _safe_score

        t0 = time.time()
        state = self._merged(key, A, row)
        score, error = _safe_score(self.stages[stage], state)
        return score, error, time.time() - t0

    def _merged(self, key: str, A: np.ndarray, row: int):
        p = int(getattr(getattr(self.merger, "stack", None), "P", 0) or 0)
        if len(A) * p * 4 > self.merge_budget:
            return self.merger.merge_many(A[row:row + 1])[0]
        if key != self._key:
            self._key, self._states = None, None  # free the last generation before merging the next
            self._states, self._key = self.merger.merge_many(A), key
        return self._states[row]


def _gpu_share(s: PoolSettings, resources: dict[str, float]) -> float:
    """GPUs per worker: the given share, or on cuda a fair share (≤ 1) of the cluster's; refuses what cannot fit
    (Ray would wait for it forever)."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    share = s.gpus_per_worker
    if share is None:
        share = min(1.0, gpus / s.workers) if s.device.startswith("cuda") else 0.0
    if s.device.startswith("cuda") and share <= 0:
        raise ConfigError(f"--device {s.device} with Ray workers: the cluster has {gpus:g} GPUs (give "
                          "--gpus-per-worker, or run the workers on cpu)")
    if s.workers * s.cpus_per_worker > cpus + 1e-9 or s.workers * share > gpus + 1e-9:
        raise ConfigError(f"--workers {s.workers} × ({s.cpus_per_worker:g} CPU, {share:g} GPU) does not fit the Ray "
                          f"cluster ({cpus:g} CPUs, {gpus:g} GPUs); use fewer workers or smaller shares")
    return share


def _matrix_key(A: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(A, dtype="<f8").tobytes()).hexdigest()[:20]


def _mute_ray() -> Callable[[], None]:
    """Silence Ray's own output on the driver; returns the undo.

    Two channels: Ray's Python loggers (start-up notices and warnings), and the raylet's error messages (a killed
    worker's multi-line, coloured "A worker died or was killed while executing a task …"), which a driver thread
    prints to stdout whatever the logging settings, unless Ray's worker-log switch is off (Ray turns it off itself
    while a debugger breakpoint is active).
    """
    try:
        import ray._private.worker as ray_worker
    except ImportError:  # another Ray layout: its loggers are all that can be muted
        ray_worker = None
    log, switch = logging.getLogger("ray"), "_worker_logs_enabled"
    level, enabled = log.level, getattr(ray_worker, switch, None)
    log.setLevel(logging.ERROR)
    if enabled is not None:
        setattr(ray_worker, switch, False)

    def undo() -> None:
        log.setLevel(level)
        if enabled is not None:
            setattr(ray_worker, switch, enabled)

    return undo


def _check_address(address: str, timeout: float) -> None:
    """Fail fast, naming the address, when HOST:PORT does not accept connections (Ray itself waits a minute)."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: expected HOST:PORT, 'auto' or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(f"--ray-address {address}: unreachable ({first_line(exc)}); is a Ray head running there "
                          "(`ray start --head`)?") from None


class RayPool:
    """Evaluation workers on Ray for :func:`lcsc.search.run_search` (``pool=``); use as a context manager.

    ``merger_factory()`` and ``objective_factory()`` run on each worker (they are pickled: module-level functions
    or ``functools.partial`` of them); they must open the same checkpoints and build the same objective as the
    driver's, which :meth:`start` checks. ``on_notice(line)`` receives one line per dead worker (the CLI prints it
    above the progress bar).
    """

    def __init__(self, merger_factory: Callable[[], Any], objective_factory: Callable[[], Any],
                 settings: PoolSettings | None = None, on_notice: Callable[[str], None] | None = None) -> None:
        if not ray_available():
            raise ConfigError("--workers / --ray-address need Ray: pip install 'lcsc-diffusion[ray]'")
        self.settings = settings or PoolSettings()
        self.merger_factory, self.objective_factory = merger_factory, objective_factory
        self.actors: list[Any] = []
        self.replacements, self.calibration, self.expected, self.gpus = 0, None, None, 0.0
        self.race_samples: int | None = None
        self._started_ray = False
        self.hosts: list[str] = []
        self.on_notice = on_notice or (lambda _line: None)
        self._labels: dict[int, str] = {}  # id(actor) → "N (pid P on HOST)", numbered as started
        self._numbered = 0
        self._unmute: Callable[[], None] | None = None

    # -- lifetime -------------------------------------------------------------------------------------------
    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, expected: dict[str, Any], race_samples: int | None = None) -> None:
        """Connect (or start Ray), start the workers and check each opened the driver's checkpoints and noise."""
        import ray

        s = self.settings
        self.expected, self.race_samples = expected, race_samples
        if not s.verbose and self._unmute is None:
            self._unmute = _mute_ray()
        if not ray.is_initialized():
            if s.address is not None:
                _check_address(s.address, s.connect_timeout_s)
            kw: dict[str, Any] = {"address": s.address} if s.address else {"num_cpus": max(
                1, int(np.ceil(s.workers * s.cpus_per_worker)))}
            try:
                ray.init(include_dashboard=False, log_to_driver=s.verbose, configure_logging=s.verbose, **kw)
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; one line naming the address
                where = f"--ray-address {s.address}" if s.address else "a local Ray instance"
                raise ConfigError(f"{where}: cannot start or join Ray ({first_line(exc)})") from None
            self._started_ray = True
        self.gpus = _gpu_share(s, ray.cluster_resources())
        self.actors = [self._new_actor() for _ in range(s.workers)]
        self.hosts = [self._checked(a) for a in self.actors]

    def close(self) -> None:
        """Stop the workers (and the local Ray instance this pool started)."""
        if not ray_available():
            return
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):  # already dead
                ray.kill(actor)
        self.actors = []
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False
        if self._unmute is not None:
            self._unmute()
            self._unmute = None

    def _new_actor(self):
        import ray

        s = self.settings
        cls = ray.remote(num_cpus=s.cpus_per_worker, num_gpus=self.gpus, max_restarts=0)(_Worker)
        actor = cls.remote(self.merger_factory, self.objective_factory, self.race_samples,
                           max(1, int(s.cpus_per_worker)), s.merge_budget_bytes)
        self._numbered += 1
        self._labels[id(actor)] = str(self._numbered)
        return actor

    def _checked(self, actor) -> str:
        """Wait for a new worker, compare it with the driver; raise naming what differs or why it did not start."""
        import ray

        try:
            ident = ray.get(actor.identity.remote(), timeout=self.settings.start_timeout_s)
            if self.calibration is not None:
                ray.get(actor.load_calibration.remote(self.calibration))
        except ray.exceptions.GetTimeoutError:
            raise WorkerPoolError(f"a Ray worker did not start within {self.settings.start_timeout_s:.0f} s (is "
                                  "the cluster short of the CPUs/GPUs it asks for?)") from None
        except ray.exceptions.RayError as exc:
            raise WorkerPoolError(f"a Ray worker could not open the checkpoint stack or build the objective: "
                                  f"{_cause(exc)}") from None
        if "error" in ident:
            raise WorkerPoolError(f"a Ray worker on {ident['host']} could not open the checkpoint stack or build the "
                                  f"objective: {ident['error']}")
        for key in ("hashes", "K", "G", "anchors", "noise_sha"):
            if self.expected is not None and key in self.expected and ident[key] != self.expected[key]:
                raise WorkerPoolError(f"Ray worker on {ident['host']} (pid {ident['pid']}) opened different "
                                      f"{'checkpoints' if key != 'noise_sha' else 'objective noise'} than the "
                                      f"driver ({key} differs); every worker must see the same files")
        self._labels[id(actor)] += f" (pid {ident['pid']} on {ident['host']})"
        return ident["host"]

    # -- work -----------------------------------------------------------------------------------------------
    def load_calibration(self, state: dict) -> None:
        """Give every worker (and every later replacement) the objective calibration the driver journalled."""
        import ray

        self.calibration = state
        ray.get([a.load_calibration.remote(state) for a in self.actors])

    def evaluate(self, stage: str, A: np.ndarray, jobs: list[tuple[int, int]]
                 ) -> Iterator[tuple[int, tuple[float | None, str | None], float]]:
        """Score ``jobs`` = [(candidate index, row of A)]; yields (index, (score, error), seconds) as they finish."""
        import ray

        key, A_ref = _matrix_key(A), ray.put(np.asarray(A))
        pending, inflight = deque(jobs), {}
        idle, attempts = list(self.actors), {j[0]: 0 for j in jobs}
        while pending or inflight:
            while pending and idle:
                actor, job = idle.pop(0), pending.popleft()
                inflight[actor.score.remote(stage, key, A_ref, job[1])] = (job, actor)
            ready, _ = ray.wait(list(inflight), num_returns=1)
            job, actor = inflight.pop(ready[0])
            try:
                score, error, seconds = ray.get(ready[0])
            except ray.exceptions.RayActorError as exc:
                attempts[job[0]] += 1
                self._notice_death(actor, job[0], attempts[job[0]])
                idle.extend(self._replace(actor, exc))
                if attempts[job[0]] < self.settings.max_attempts:
                    pending.appendleft(job)
                else:
                    yield job[0], (None, f"killed {attempts[job[0]]} Ray workers: {_cause(exc)}"[:500]), 0.0
                continue
            except ray.exceptions.RayError as exc:
                idle.append(actor)
                yield job[0], (None, _cause(exc)[:500]), 0.0
                continue
            idle.append(actor)
            yield job[0], (score, error), seconds

    def _notice_death(self, dead, candidate: int, attempts: int) -> None:
        """One line for ``on_notice``: which worker died and what becomes of its candidate."""
        n = self.settings.max_attempts
        fate = f"re-queued (attempt {attempts + 1} of {n})" if attempts < n else \
            f"recorded as failed (it killed {attempts} workers)"
        self.on_notice(f"Ray worker {self._labels.get(id(dead), '?')} died; candidate {candidate} {fate}")

    def _replace(self, dead, exc) -> list:
        """Drop a dead worker; start a replacement while the budget lasts. Raise when no worker is left."""
        self.actors = [a for a in self.actors if a is not dead]
        self._labels.pop(id(dead), None)
        limit = self.settings.max_replacements
        limit = 2 * self.settings.workers if limit is None else limit
        if self.replacements < limit:
            self.replacements += 1
            try:
                actor = self._new_actor()
                self._checked(actor)
                self.actors.append(actor)
                return [actor]
            except WorkerPoolError:
                pass
        if not self.actors:
            raise WorkerPoolError(f"every Ray worker died (last: {_cause(exc)}); the journal keeps every finished "
                                  "evaluation: continue with lcsc search --resume OUT_DIR")
        return []


def _cause(exc: BaseException) -> str:
    """The root error of a Ray exception, in one line."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    if isinstance(cause, BaseException):
        return first_line(cause, 300)
    lines = [line.strip() for line in str(getattr(exc, "error_msg", "") or exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]
