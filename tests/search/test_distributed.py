"""Candidates scored on a local 2-worker Ray cluster: the same journal as a serial run, killed workers retried (and
reported in one line, Ray's own warning muted unless --verbose), a killed driver resumed, and bad input refused with
one clear error."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.cli.search_pool import make_pool
from lcsc.errors import ConfigError
from lcsc.merge import StackMerger
from lcsc.search import SearchConfig, run_search
from lcsc.search.distributed import PoolSettings, RayPool, WorkerPoolError
from lcsc.search.journal import TIMING_FIELDS, Journal

ray = pytest.importorskip("ray")


def _init_ray() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local Ray instance for the module (the pools join it rather than start their own; a start of its own is
    tested in tests/cli/test_eval_cli.py)."""
    _init_ray()
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_is_up(ray_cluster):
    """The module's instance, again, after a test that shut it down (the unreachable-address test, the module's last,
    does not start it again itself: a start costs seconds, and nothing may follow it)."""
    if not ray.is_initialized():
        _init_ray()


class DistanceObjective:
    """Deterministic: mean squared distance of the flattened weights to a fixed target. With ``die_once`` set,
    the first worker to score its ``die_at``-th candidate kills its own process (once per run, across workers)."""

    direction = "minimize"

    def __init__(self, die_once: str | None = None, die_at: int = 3, always_die_above: float | None = None) -> None:
        self.die_once, self.die_at, self.always_die_above, self.calls = die_once, die_at, always_die_above, 0

    def score(self, state: dict[str, torch.Tensor]) -> float:
        self.calls += 1
        flat = torch.cat([t.reshape(-1).double() for _, t in sorted(state.items())])
        target = torch.randn(flat.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.1
        value = float((flat - target).pow(2).mean())
        if self.die_once and self.calls == self.die_at and _first_to_create(self.die_once):
            os._exit(1)  # a worker killed mid-evaluation (OOM killer, preemption)
        if self.always_die_above is not None and value > self.always_die_above:
            os._exit(1)
        return value


def _first_to_create(path: str) -> bool:
    """True for exactly one caller across processes (O_EXCL), so only one worker dies."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class CalibratedObjective(DistanceObjective):
    """Divides by its value at the best initial individual, learnt once by the driver (like ``mean:`` objectives)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm: float | None = None

    def calibrate(self, states: list[dict[str, torch.Tensor]]) -> dict:
        raw = [DistanceObjective.score(self, s) for s in states]
        self.norm = min(raw)
        return {"norm": self.norm, "scores": [r / self.norm for r in raw]}

    def load_calibration(self, state: dict) -> None:
        self.norm = state["norm"]

    def score(self, state: dict[str, torch.Tensor]) -> float:
        return super().score(state) / self.norm  # uncalibrated: TypeError, a failed record


class PrefixObjective:
    """Racing-capable: the distance over the first ``num_samples`` weights only."""

    direction, num_samples = "minimize", 400

    def with_samples(self, n: int) -> PrefixObjective:
        other = PrefixObjective()
        other.num_samples = n
        return other

    def score(self, state: dict[str, torch.Tensor]) -> float:
        flat = torch.cat([t.reshape(-1).double() for _, t in sorted(state.items())])
        target = torch.randn(flat.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.1
        return float((flat - target)[: self.num_samples].pow(2).mean())


def open_merger(folder: Path) -> StackMerger:
    return StackMerger(CheckpointStack.open(folder, progress=False))


def _records(journal_path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in Journal.load(journal_path).records]


def _search(folder: Path, out: Path, objective, pool=None, evals: int = 24):
    cfg = SearchConfig(evals=evals, generation_size=6, seed=5)
    return run_search(open_merger(folder), objective, cfg, out, progress=False, pool=pool)


def _pool(folder: Path, objective_factory, workers: int = 2, **kw) -> RayPool:
    return RayPool(partial(open_merger, folder), objective_factory, PoolSettings(workers=workers, **kw))


def test_two_workers_write_the_serial_journal(regression_ckpts: Path, tmp_path: Path) -> None:
    serial = _search(regression_ckpts, tmp_path / "serial", DistanceObjective())
    with _pool(regression_ckpts, DistanceObjective) as pool:
        dist = _search(regression_ckpts, tmp_path / "dist", DistanceObjective(), pool)
        hosts = pool.hosts
    assert len(hosts) == 2
    assert _records(tmp_path / "dist" / "journal.jsonl") == _records(tmp_path / "serial" / "journal.jsonl")
    assert dist.best_score == serial.best_score and np.array_equal(dist.best, serial.best)
    # the scores really came from the workers: their own eval times are recorded, the driver's objective idle
    assert all(r["eval_s"] > 0 for r in Journal.load(tmp_path / "dist" / "journal.jsonl").records
               if r["status"] == "ok" and r["generation"] > 0)


def test_workers_receive_the_drivers_calibration(regression_ckpts: Path, tmp_path: Path) -> None:
    _search(regression_ckpts, tmp_path / "serial", CalibratedObjective())
    with _pool(regression_ckpts, CalibratedObjective) as pool:
        _search(regression_ckpts, tmp_path / "dist", CalibratedObjective(), pool)
    records = _records(tmp_path / "dist" / "journal.jsonl")
    assert all(r["status"] == "ok" for r in records)
    assert records == _records(tmp_path / "serial" / "journal.jsonl")


def test_racing_on_workers_matches_serial(regression_ckpts: Path, tmp_path: Path) -> None:
    cfg = SearchConfig(evals=24, generation_size=6, seed=5, racing=True, race_fraction=0.25, race_keep=0.5)
    run_search(open_merger(regression_ckpts), PrefixObjective(), cfg, tmp_path / "serial", progress=False)
    with _pool(regression_ckpts, PrefixObjective) as pool:
        run_search(open_merger(regression_ckpts), PrefixObjective(), cfg, tmp_path / "dist", progress=False, pool=pool)
    records = _records(tmp_path / "dist" / "journal.jsonl")
    assert {r["stage"] for r in records} == {"race", "full"}
    assert records == _records(tmp_path / "serial" / "journal.jsonl")


def _args_merger(args: argparse.Namespace) -> StackMerger:
    return open_merger(Path(args.ckpts))


def _args_dying(args: argparse.Namespace) -> DistanceObjective:
    return DistanceObjective(die_once=args.marker, die_at=4)


def _cli_pool(folder: Path, marker: Path, verbose: bool, workers: int = 2) -> RayPool:
    """The pool ``lcsc search --workers N [--verbose]`` builds, whose first worker to score 4 candidates dies."""
    args = argparse.Namespace(workers=workers, ray_address=None, cpus_per_worker=1.0, gpus_per_worker=None,
                              device="cpu", verbose=verbose, ckpts=str(folder), marker=str(marker))
    return make_pool(args, _args_merger, _args_dying)


RAY_WARNING = "A worker died or was killed while executing a task"
OUR_LINE = r"Ray worker [12] \(pid \d+ on \S+\) died; candidate \d+ re-queued \(attempt 2 of 3\)\n"


def _captured(capfd, until: str | None, seconds: float) -> str:
    """stdout + stderr of the next ``seconds`` (Ray's warning comes from a driver thread, after the error), or
    until ``until`` appears."""
    text, deadline = "", time.time() + seconds
    while True:  # read at least once
        out, err = capfd.readouterr()
        text += out + err
        if time.time() >= deadline or (until is not None and until in text):
            return text
        time.sleep(0.25)


def test_a_killed_worker_is_replaced_and_its_candidate_retried(regression_ckpts: Path, tmp_path: Path,
                                                               capfd) -> None:
    serial = _search(regression_ckpts, tmp_path / "serial", DistanceObjective())
    marker = tmp_path / "died"
    capfd.readouterr()
    with _cli_pool(regression_ckpts, marker, verbose=False) as pool:
        died: list[float] = []
        notice = pool.on_notice
        pool.on_notice = lambda line: (died.append(time.time()), notice(line))
        dist = _search(regression_ckpts, tmp_path / "dist", DistanceObjective(), pool)
        replaced = pool.replacements
        # the search's output, and what Ray would print in the 4 s after the death (unmuted, its warning comes at
        # once: before our line, in the verbose test); the replacement's start already took part of them
        printed = _captured(capfd, None, (died[0] + 4.0 - time.time()) if died else 4.0)
    assert marker.exists() and replaced == 1
    assert re.fullmatch(OUR_LINE, printed), printed  # one line of ours, nothing of Ray's
    assert RAY_WARNING not in printed and "\x1b[" not in printed
    records = _records(tmp_path / "dist" / "journal.jsonl")
    assert records == _records(tmp_path / "serial" / "journal.jsonl")  # nothing lost, nothing counted twice
    assert len({(r["candidate"], r["stage"]) for r in records}) == len(records)
    assert dist.objective_calls == serial.objective_calls


def test_verbose_shows_rays_own_warning_too(regression_ckpts: Path, tmp_path: Path, capfd) -> None:
    capfd.readouterr()
    with _cli_pool(regression_ckpts, tmp_path / "died", verbose=True, workers=1) as pool:  # a death, a replacement
        _search(regression_ckpts, tmp_path / "dist", DistanceObjective(), pool)
        text = _captured(capfd, RAY_WARNING, 60.0)
    assert RAY_WARNING in text and re.search(OUR_LINE, text), text


def test_a_candidate_that_kills_every_worker_is_recorded_failed(regression_ckpts: Path, tmp_path: Path) -> None:
    # on the workers every candidate kills its worker: attempts run out, then the replacements (the driver's own
    # objective is never asked to score). One worker, two replacements: the first candidate kills workers 1 and 2
    # (re-queued, then recorded as failed while worker 3 is up), the next kills worker 3, the last one
    factory, notes = partial(DistanceObjective, always_die_above=0.0), []
    settings = PoolSettings(workers=1, max_attempts=2, max_replacements=2)
    with RayPool(partial(open_merger, regression_ckpts), factory, settings, on_notice=notes.append) as pool, \
            pytest.raises(WorkerPoolError, match="every Ray worker died"):
        _search(regression_ckpts, tmp_path / "dist", DistanceObjective(), pool)
    assert [int(n.split()[2]) for n in notes] == [1, 2, 3], notes  # 1 worker, 2 replacements
    fates = [re.fullmatch(r"Ray worker \d \(pid \d+ on \S+\) died; candidate \d+ (.*)", n)[1] for n in notes]
    assert set(fates) == {"re-queued (attempt 2 of 2)", "recorded as failed (it killed 2 workers)"}, notes
    records = Journal.load(tmp_path / "dist" / "journal.jsonl").records
    failed = [r for r in records if r["status"] == "failed"]
    assert failed and all("killed 2 Ray workers" in r["error"] for r in failed)  # journalled before the pool gave up


def test_worker_that_cannot_open_the_stack_is_one_clear_error(regression_ckpts: Path, tmp_path: Path) -> None:
    missing = tmp_path / "not-here"
    pool = RayPool(partial(open_merger, missing), DistanceObjective, PoolSettings(workers=1))
    with pool, pytest.raises(WorkerPoolError, match=f"could not open.*{missing.name}: no such file"):
        _search(regression_ckpts, tmp_path / "dist", DistanceObjective(), pool)
    assert not (tmp_path / "dist" / "journal.jsonl").exists()


def test_without_ray_workers_name_the_extra(monkeypatch, regression_ckpts: Path, tmp_path: Path) -> None:
    from lcsc.cli import search_pool
    from lcsc.cli.main import main

    monkeypatch.setattr(search_pool, "ray_available", lambda: False)
    code = main(["search", str(regression_ckpts), "--objective", f"{__file__}:DistanceObjective", "--evals", "8",
                 "--workers", "2", "-o", str(tmp_path / "out")])
    assert code == 2
    assert not (tmp_path / "out" / "journal.jsonl").exists()


OBJECTIVE = """
import os, time
import torch

direction = "minimize"


def score(state_dict):
    flat = torch.cat([t.reshape(-1).double() for _, t in sorted(state_dict.items())])
    target = torch.randn(flat.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.1
    time.sleep(float(os.environ.get("LCSC_TEST_SLEEP", "0")))
    return float((flat - target).pow(2).mean())
"""


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lcsc", "search", *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_of_the_driver_then_resume_matches_serial(regression_ckpts: Path, tmp_path: Path) -> None:
    """A driver on 2 workers is killed mid-run (its own process); ``lcsc search --resume`` finishes the journal on 2
    workers. Both join the module's Ray instance (a start of its own is tested in tests/cli/test_eval_cli.py), and
    the serial reference and the resume run in this process: only the driver that must die starts an interpreter."""
    from lcsc.cli.main import main

    objective = tmp_path / "objective.py"
    objective.write_text(OBJECTIVE)
    args = [str(regression_ckpts), "--objective", f"{objective}:score", "--evals", "30", "--seed", "3"]
    assert main(["search", *args, "-o", str(tmp_path / "ref")]) == 0
    out = tmp_path / "killed"
    address = ray.get_runtime_context().gcs_address
    proc = _cli(*args, "--workers", "2", "--ray-address", address, "-o", str(out), env={"LCSC_TEST_SLEEP": "0.1"})
    deadline, journal = time.time() + 180, out / "journal.jsonl"
    while (not journal.exists() or journal.read_bytes().count(b"\n") < 14) and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert journal.read_bytes().count(b"\n") < 31, "the run finished before it could be killed"
    assert main(["search", "--resume", str(out), "--workers", "2"]) == 0
    assert _records(journal) == _records(tmp_path / "ref" / "journal.jsonl")
    best = json.loads((out / "best_coefficients.json").read_text())
    assert best == json.loads((tmp_path / "ref" / "best_coefficients.json").read_text())


@pytest.mark.parametrize("kw,match", [({"workers": 0}, "--workers 0: needs at least 1"),
                                      ({"cpus_per_worker": 0.0}, "--cpus-per-worker 0: must be > 0"),
                                      ({"cpus_per_worker": float("nan")}, "--cpus-per-worker nan"),
                                      ({"gpus_per_worker": float("nan")}, "--gpus-per-worker nan: must be >= 0"),
                                      ({"gpus_per_worker": 1.5}, "above 1 it must be a whole number")])
def test_bad_pool_settings_are_one_clear_error(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PoolSettings(**kw)


def _anchored_merger(folder: Path) -> StackMerger:
    """The window plus two anchors (the mean of the checkpoints, and the first one scaled): what every worker opens."""
    stack = CheckpointStack.open(folder, progress=False)
    mean = {k: sum(stack.checkpoint(i)[k] for i in range(stack.K)) / stack.K for k in stack.checkpoint(0)}
    scaled = {k: 0.9 * v for k, v in stack.checkpoint(0).items()}
    return StackMerger(stack.with_anchors([("mean", mean), ("scaled", scaled)]))


def test_workers_see_the_same_anchors(regression_ckpts: Path, tmp_path: Path) -> None:
    cfg = SearchConfig(evals=24, generation_size=6, seed=5)
    serial = run_search(_anchored_merger(regression_ckpts), DistanceObjective(), cfg, tmp_path / "serial",
                        progress=False)
    assert {"anchor mean", "anchor scaled"} <= set(serial.init_scores)
    pool = RayPool(partial(_anchored_merger, regression_ckpts), DistanceObjective, PoolSettings(workers=2))
    with pool:
        dist = run_search(_anchored_merger(regression_ckpts), DistanceObjective(), cfg, tmp_path / "dist",
                          progress=False, pool=pool)
    assert _records(tmp_path / "dist" / "journal.jsonl") == _records(tmp_path / "serial" / "journal.jsonl")
    assert np.array_equal(dist.best, serial.best)
    # a worker whose stack lacks the anchors is refused before anything is scored
    with pytest.raises(WorkerPoolError, match="differs"), \
            RayPool(partial(open_merger, regression_ckpts), DistanceObjective, PoolSettings(workers=1)) as bad:
        run_search(_anchored_merger(regression_ckpts), DistanceObjective(), cfg, tmp_path / "bad", progress=False,
                   pool=bad)


def test_unreachable_address_and_oversized_requests_are_refused(regression_ckpts: Path, tmp_path: Path) -> None:
    """The module's last test: it shuts the module's Ray instance down (the pool must connect itself) and leaves it
    down (the ``_ray_is_up`` fixture starts it again should another test follow)."""
    pool = _pool(regression_ckpts, DistanceObjective, workers=3)  # 3 CPUs asked of a 2-CPU cluster
    with pool, pytest.raises(ConfigError, match=r"--workers 3 .* does not fit the Ray cluster \(2 CPUs"):
        _search(regression_ckpts, tmp_path / "b", DistanceObjective(), pool)
    with pytest.raises(ConfigError, match="cluster has 0 GPUs"):
        _pool(regression_ckpts, DistanceObjective, device="cuda").start({})
    ray.shutdown()
    t0 = time.time()
    pool = _pool(regression_ckpts, DistanceObjective, address="127.0.0.1:9", connect_timeout_s=2.0)
    with pool, pytest.raises(ConfigError, match=r"--ray-address 127.0.0.1:9: unreachable"):
        _search(regression_ckpts, tmp_path / "a", DistanceObjective(), pool)
    assert time.time() - t0 < 30
    with pytest.raises(ConfigError, match="HOST:PORT"):
        _pool(regression_ckpts, DistanceObjective, address="nonsense").start({})
    assert not ray.is_initialized()
