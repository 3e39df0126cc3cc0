"""``StageClock``: an experiment's named stages, their wall times, and start / done reports to a callback."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["StageClock"]


class StageClock:
    """Runs named stages, keeps their wall times (s) and reports start / done to ``on_stage``."""

    def __init__(self, on_stage: Callable[[str, dict], None] | None) -> None:
        self.stages: dict[str, float] = {}
        self.on_stage = on_stage

    def run(self, name: str, fn, *args, **kw):
        if self.on_stage:
            self.on_stage("start", {"stage": name})
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        self.stages[name] = round(time.perf_counter() - t0, 2)
        if self.on_stage:
            self.on_stage("done", {"stage": name, "seconds": self.stages[name]})
        return out
