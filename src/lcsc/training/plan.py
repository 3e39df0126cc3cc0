"""Recording plan: which steps fall in the windows (W iterations ending at given steps, every I iterations)."""

from __future__ import annotations

from dataclasses import dataclass

from lcsc.errors import ConfigError

__all__ = ["RecordPlan"]


@dataclass(frozen=True)
class RecordPlan:
    """Windows of ``window`` iterations ending at ``ends``; raw weights at ``end, end−I, end−2I, …`` (> end − W, ≥ 1)."""

    total_steps: int
    window: int
    interval: int
    ends: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ConfigError(f"total steps {self.total_steps} must be >= 1")
        if self.interval < 1 or self.window < 1:
            raise ConfigError(f"record window {self.window} and interval {self.interval} must be >= 1")
        ends = tuple(sorted(set(int(e) for e in self.ends))) or (self.total_steps,)
        bad = [e for e in ends if not 1 <= e <= self.total_steps]
        if bad:
            raise ConfigError(f"window ends {bad} are outside the run's steps 1..{self.total_steps}")
        object.__setattr__(self, "ends", ends)

    def window_steps(self, end: int) -> list[int]:
        """Ascending steps recorded in the window ending at ``end``."""
        return sorted(s for s in range(end, max(end - self.window, 0), -self.interval))

    def start_step(self, end: int) -> int:
        """The window's start: one interval before its first checkpoint (≥ 0; 0 is the initial weights)."""
        return max(0, self.window_steps(end)[0] - self.interval)

    def start_steps(self) -> frozenset[int]:
        """Every window's start step."""
        return frozenset(self.start_step(end) for end in self.ends)

    def steps(self) -> dict[int, list[int]]:
        """Window end → its steps."""
        return {end: self.window_steps(end) for end in self.ends}

    def windows_of(self, step: int) -> list[int]:
        """The window ends whose window records ``step`` (empty: never written)."""
        return [e for e in self.ends if e - self.window < step <= e and (e - step) % self.interval == 0]
