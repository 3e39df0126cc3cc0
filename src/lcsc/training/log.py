"""JSONL loss log that survives crashes and resumes: on reopen, lines after the resumed step are dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lcsc.atomic import append_record, write_text

__all__ = ["LossLog", "read_log"]


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Parsed records of a loss log (a torn last line from a crash is skipped)."""
    records = []
    path = Path(path)
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


class LossLog:
    """Append-only JSONL; ``resume_step`` keeps only records with ``step <= resume_step``.

    Reopening rewrites the log atomically with the kept records (which also drops a torn last line left by a
    kill); an append that fails (e.g. a full disk, raised as :class:`~lcsc.errors.DiskFullError`) is cut back off.
    """

    def __init__(self, path: str | Path, resume_step: int = 0) -> None:
        self.path = Path(path)
        kept = [r for r in read_log(self.path) if r.get("step", 0) <= resume_step] if resume_step else []
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        append_record(self._fh.fileno(), (json.dumps(record) + "\n").encode(), self.path, fsync=False,
                      hint="the log up to the last step is kept; free some space and resume")

    def close(self) -> None:
        self._fh.close()
