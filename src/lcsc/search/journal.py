"""The search journal: one JSON line per evaluated candidate, appended atomically (flush + fsync), resumable.

Crash safety: the header is written atomically (a journal file always starts with a complete header); each record
is appended in one write and fsynced, and an append that fails (a full disk, raised as
:class:`~lcsc.errors.DiskFullError`; an interrupt) is cut back off. Only a hard kill mid-append leaves a torn last
line (bytes without the final newline): :meth:`Journal.load` drops it silently and truncates it away, and the
resumed search re-evaluates that candidate, so it ends as an uninterrupted search would. A damaged line that does
end in a newline is not something lcsc writes; it is refused with an error naming the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lcsc.atomic import append_record, write_text
from lcsc.errors import ConfigError

__all__ = ["Journal", "TIMING_FIELDS"]

TIMING_FIELDS = ("wall_time", "elapsed_s", "eval_s")


class Journal:
    """``journal.jsonl``: a header line (checkpoints, config) then one record per evaluated candidate."""

    def __init__(self, path: Path, header: dict[str, Any], records: list[dict[str, Any]],
                 meta: list[dict[str, Any]] | None = None):
        self.path, self.header, self.records, self.meta = path, header, records, meta or []

    @classmethod
    def create(cls, path: str | Path, header: dict[str, Any]) -> Journal:
        path = Path(path)
        cls.check_new(path)
        journal = cls(path, {"type": "header", **header}, [])
        write_text(path, _line(journal.header).decode())
        return journal

    @staticmethod
    def check_new(path: str | Path) -> None:
        """Refuse (a :class:`ConfigError`) when ``path`` already holds a journal that :meth:`create` would replace."""
        path = Path(path)
        if path.exists() and _first_line(path).endswith(b"\n"):
            raise ConfigError(
                f"{path}: a journal already exists; resume it with --resume or choose another folder"
            )
        # (a file without one complete line is a header torn by a kill in an older lcsc: nothing to keep)

    @classmethod
    def load(cls, path: str | Path) -> Journal:
        """Read a journal; a torn last line (killed mid-write: no final newline) is dropped and truncated away."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no journal to resume")
        raw = path.read_bytes()
        # Every line is written with its newline in one call, so a last piece without one is a torn write.
        keep = raw[: raw.rfind(b"\n") + 1]
        if len(keep) < len(raw):
            with open(path, "r+b") as fh:
                fh.truncate(len(keep))
        complete = []
        for n, line in enumerate(keep.splitlines()):
            if not line.strip():
                continue
            try:
                complete.append(json.loads(line))
            except json.JSONDecodeError:
                raise ConfigError(f"{path}: line {n + 1} is not valid JSON; the journal is damaged") from None
        if not complete:
            raise ConfigError(f"{path}: holds no complete header line (the search was killed while starting); "
                              "start it again without --resume")
        if complete[0].get("type") != "header":
            raise ConfigError(f"{path}: not an lcsc search journal (no header line)")
        records = [_upgrade(r) for r in complete[1:] if r.get("type") == "eval"]
        return cls(path, complete[0], records, [r for r in complete[1:] if r.get("type") != "eval"])

    def check_checkpoints(self, steps: list[int], hashes: list[str]) -> None:
        """Refuse a journal written for another checkpoint set."""
        if self.header.get("steps") != list(steps) or self.header.get("hashes") != list(hashes):
            raise ConfigError(
                f"{self.path}: this journal was written for a different checkpoint set "
                f"({len(self.header.get('steps', []))} checkpoints, steps {self.header.get('steps', [])[:3]}…); "
                f"the given set has {len(steps)} checkpoints, steps {list(steps)[:3]}… (or different file contents)"
            )

    def append(self, record: dict[str, Any]) -> None:
        self._write_line({"type": "eval", **record})
        self.records.append({"type": "eval", **record})

    def append_meta(self, kind: str, record: dict[str, Any]) -> None:
        """A non-evaluation line (e.g. an objective's calibration), kept in :attr:`meta`."""
        self._write_line({"type": kind, **record})
        self.meta.append({"type": kind, **record})

    def find_meta(self, kind: str) -> dict[str, Any] | None:
        return next((m for m in self.meta if m["type"] == kind), None)

    def _write_line(self, obj: dict[str, Any]) -> None:
        with open(self.path, "ab", buffering=0) as fh:
            append_record(fh.fileno(), _line(obj), self.path,
                          hint="the journal keeps every record before this one; free some space and resume")


def _first_line(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.readline()


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def _upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """Version-1 journals (Algorithm 1 only, no racing): every record is a candidate's full-count score."""
    record.setdefault("candidate", record["index"])
    record.setdefault("stage", "full")
    record.setdefault("samples", None)
    return record
