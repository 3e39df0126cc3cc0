"""Progress for long work: one status line per stage (start, reuse of a cached result, end with its time).

Bars (tqdm) show progress inside a pass on a terminal; a stage line says what is running, on a terminal or in a log,
so that no stretch of minutes passes without output. Library code announces its stages here; nothing is written
until a front end (the CLI) turns the lines on with :func:`enable_stage_lines`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

from tqdm.auto import tqdm

__all__ = ["enable_stage_lines", "failure_reason", "stage", "stage_line", "stage_lines_enabled", "stage_times", "reset_stage_times",
           "ticking", "track"]

T = TypeVar("T")

_STATE: dict = {"on": False, "stream": None}
_TIMES: dict[str, float] = {}
_REASON_WIDTH = 60  # characters of an error message a failed stage line keeps


def enable_stage_lines(on: bool = True, stream: TextIO | None = None) -> None:
    """Write stage lines (``on=False``: none, the library default) to ``stream`` (default: ``sys.stderr`` at the
    time of each line)."""
    _STATE["on"], _STATE["stream"] = on, stream


def stage_lines_enabled() -> bool:
    """True when stage lines are written."""
    return bool(_STATE["on"])


def stage_line(message: str) -> None:
    """One status line (``[lcsc] message``), written above any progress bar; nothing when lines are off."""
    if _STATE["on"]:
        stream = _STATE["stream"] or sys.stderr
        tqdm.write(f"[lcsc] {message}", file=stream)
        stream.flush()


@contextmanager
def stage(name: str, detail: str = "", heartbeat_s: float | None = None) -> Iterator[None]:
    """A timed stage: a line when it starts (``name: detail …``) and one when it ends (``name: 12.3 s``, or
    ``name: failed (reason)`` when the block raises, the error then propagating unchanged); with
    ``heartbeat_s``, a line every ``heartbeat_s`` seconds in between (``name: 15 s so far``). Its time is kept in
    :func:`stage_times` (summed over repeats) for estimates."""
    stage_line(f"{name}: {detail} …" if detail else f"{name} …")
    t0 = time.perf_counter()
    beating = heartbeat_s and stage_lines_enabled()
    ending = ""
    try:
        with _every(heartbeat_s, lambda: stage_line(f"{name}: {time.perf_counter() - t0:.0f} s so far")) \
                if beating else contextlib.nullcontext():
            yield
    except BaseException as exc:
        ending = f"failed ({failure_reason(exc)})"
        raise
    finally:
        seconds = time.perf_counter() - t0
        _TIMES[name] = _TIMES.get(name, 0.0) + seconds
        stage_line(f"{name}: {ending or f'{seconds:.1f} s'}")


def failure_reason(exc: BaseException, width: int = _REASON_WIDTH) -> str:
    """The first words of why ``exc`` was raised: the first line of its message, cut to ``width`` characters with
    an ellipsis (``interrupted`` for a KeyboardInterrupt, the exception's type when it has no message)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "") or type(exc).__name__
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


@contextmanager
def ticking(bar: tqdm, every_s: float = 5.0) -> Iterator[None]:
    """Redraw ``bar`` every ``every_s`` seconds while the block runs, so its elapsed time moves (and a log gets a
    line) even while one long item is being worked on."""
    with _every(every_s, bar.refresh):
        yield


@contextmanager
def _every(seconds: float, fn) -> Iterator[None]:
    """Call ``fn`` every ``seconds`` on a daemon thread while the block runs (stopped and joined at its end)."""
    done = threading.Event()

    def tick() -> None:
        while not done.wait(seconds):
            fn()
    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def stage_times() -> dict[str, float]:
    """Seconds spent in each named stage since the last :func:`reset_stage_times`."""
    return dict(_TIMES)


def reset_stage_times() -> None:
    """Forget the stage times (a front end calls this when a command starts)."""
    _TIMES.clear()


def track(items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it", progress: bool = True,
          every_s: float = 5.0) -> Iterator[T]:
    """Iterate ``items`` showing progress (``progress=False``: none): a tqdm bar on a terminal; elsewhere (a log),
    when stage lines are on, a line every ``every_s`` seconds with the count done and the time left."""
    if not progress:
        yield from items
        return
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if sys.stderr.isatty() or not stage_lines_enabled():
        yield from tqdm(items, desc=desc, total=total, unit=unit, leave=False)
        return
    t0 = last = time.perf_counter()
    for i, item in enumerate(items):
        yield item
        now = time.perf_counter()
        if now - last >= every_s:
            last = now
            elapsed = now - t0
            left = f", about {elapsed / (i + 1) * (total - i - 1):.0f} s left" if total else ""
            of = f"/{total}" if total is not None else ""
            stage_line(f"{desc}: {i + 1}{of} {unit}, {elapsed:.0f} s{left}")
