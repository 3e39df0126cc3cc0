"""The quick demo, run once per test session for every test that reads it (the report, the models, the analyses):
under pytest-xdist the first worker that needs it runs it under a file lock, and the others read its folder."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from filelock import FileLock

from lcsc.cli.main import main
from tests.demo.protocol_check import NoiseRecorder


def _run(out: Path) -> None:
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        recorder = NoiseRecorder(mp)
        assert main(["demo", "--quick", "-o", str(out)]) == 0
    record = {"draws": recorder.draws, "seeds": recorder.seeds, "contexts": recorder.contexts,
              "spaces": recorder.spaces, "chosen_from": recorder.chosen_from,
              "grid_finalists": recorder.grid_finalists, "printed": printed.getvalue()}
    (out.parent / "recorder.json").write_text(json.dumps(record, default=str))


@pytest.fixture(scope="session")
def quick_demo(request, tmp_path_factory) -> tuple[Path, SimpleNamespace, str]:
    """(output folder, what the noise recorder saw during the run, what the run printed) of ``lcsc demo --quick``."""
    worker = getattr(request.config, "workerinput", {}).get("workerid")  # None without pytest-xdist
    root = tmp_path_factory.getbasetemp() if worker is None else tmp_path_factory.getbasetemp().parent
    out = root / "quick-demo-shared" / "demo"
    with FileLock(str(root / "quick-demo-shared.lock")):
        if not (out.parent / "recorder.json").is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            _run(out)
    record = json.loads((out.parent / "recorder.json").read_text())
    recorder = SimpleNamespace(**{k: [tuple(x) if isinstance(x, list) else x for x in v] if isinstance(v, list) else v
                                  for k, v in record.items() if k != "printed"})
    return out, recorder, record["printed"]
