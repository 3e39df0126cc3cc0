"""The anchoring benchmark's bookkeeping: the demo's rows per variant, wins against EMA*, and the protocol guard."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lcsc.analysis.anchoring import demo_rows, wins
from lcsc.demo.config import DemoConfig


def _row(method: str, nfe: int, fd: float) -> dict:
    return {"model": "DM", "method": method, "iteration": 3200, "nfe": nfe, "main": method in ("EMA*", "LCSC"),
            "fd_mean": fd, "fd2_mean": fd / 10, "fd3_mean": fd / 100, "detail": ""}


def test_demo_rows_and_wins_against_ema_star():
    report = {"rows": [_row("EMA*", 5, 100.0), _row("LCSC", 5, 90.0), _row("LCSC window only", 5, 110.0),
                       _row("LCSC shrink 0.5", 5, 95.0), _row("EMA*", 10, 50.0), _row("LCSC", 10, 49.0),
                       _row("LCSC", 800, 1.0)]}
    rows = demo_rows(DemoConfig(), report, "dm")
    assert rows["anchored + guard"]["fd_mean"] == 90.0 and rows["window only"]["fd_mean"] == 110.0
    assert rows["EMA* @ NFE 10"]["fd_mean"] == 50.0 and rows["anchored (searched at 5) @ NFE 10"]["fd_mean"] == 49.0
    assert "unguarded" not in rows  # no such row: the guard exported the search's best
    at5 = {k: v for k, v in rows.items() if "10" not in k}
    assert wins(at5) == {"anchored + guard": 3, "window only": 0, "shrink 0.5": 3}


def test_the_benchmark_refuses_a_report_seed(tmp_path: Path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import anchoring

    folder = tmp_path / "demo-seed3" / "report"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(DemoConfig(seed=3).to_dict()))
    (folder / "report.json").write_text(json.dumps({"rows": [], "ema_star": {}}))
    assert anchoring.main([str(tmp_path / "demo-seed3"), "--work", str(tmp_path / "w"), "--out", str(tmp_path)]) == 2
    assert "not a decision seed" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    with pytest.raises(SystemExit):
        anchoring.main([])
