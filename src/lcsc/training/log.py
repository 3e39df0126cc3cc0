"""JSONL loss log that survives crashes and resumes: on reopen, lines after the resumed step are dropped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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
    """Append-only JSONL; ``resume_step`` keeps only records with ``step <= resume_step``."""

    def __init__(self, path: str | Path, resume_step: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_log(self.path) if r.get("step", 0) <= resume_step] if resume_step else []
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
