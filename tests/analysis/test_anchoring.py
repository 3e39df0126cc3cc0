"""The anchoring benchmark's bookkeeping: the demo's rows per variant, wins against EMA*, and the protocol guard."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lcsc.analysis.anchoring import decision_rows, wins
from lcsc.experiment.config import DemoConfig
from lcsc.protocol import ProtocolError


def test_wins_count_the_spaces_lower_than_ema_star():
    def r(fd: float) -> dict:
        return {"fd_mean": fd, "fd2_mean": fd / 10, "fd3_mean": fd / 100, "fd4_mean": 0.0}

    rows = {"EMA*": r(100.0), "anchored + guard": r(90.0), "window only": r(110.0),
            "shrink 0.5": {"fd_mean": 95.0, "fd2_mean": 10.5, "fd3_mean": 0.9}}
    assert wins(rows) == {"anchored + guard": 3, "window only": 0, "shrink 0.5": 2}  # FD4 is never counted
    assert wins({"anchored + guard": r(1.0)}) == {}


def test_decision_rows_refuse_a_report_seed(tmp_path: Path):
    with pytest.raises(ProtocolError, match="training seed 5 is a report seed"):
        decision_rows(tmp_path, DemoConfig(seed=5), {}, "dm", None, tmp_path / "w")


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


def _result(seed: int, variants: dict[str, float]) -> dict:
    """One decision seed's DM rows: EMA* at 100 / 10 / 1, each variant at ``f`` × those in every space."""
    rows = {"EMA*": {"fd_mean": 100.0, "fd2_mean": 10.0, "fd3_mean": 1.0}}
    rows |= {v: {"fd_mean": 100.0 * f, "fd2_mean": 10.0 * f, "fd3_mean": 1.0 * f} for v, f in variants.items()}
    return {"seed": seed, "models": {"dm": {"rows": rows, "seconds": {}}}}


def test_the_export_rule_takes_the_gradient_search_only_when_it_wins_strictly_more_triples():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import anchoring

    assert "gradient + guard" in anchoring.EXPORT_RULES and anchoring.DEFAULT_RULE == "anchored + guard"
    better = [_result(s, {"anchored + guard": 1.01 if s == 0 else 0.95, "gradient + guard": 0.5}) for s in range(3)]
    figures = anchoring._figures(better)
    assert figures["wins_vs_ema_star"] == {"anchored + guard": 6, "gradient + guard": 9}
    assert figures["chosen_export"] == "gradient + guard"
    tie = [_result(s, {"anchored + guard": 0.95, "gradient + guard": 0.5}) for s in range(3)]
    assert anchoring._figures(tie)["chosen_export"] == "anchored + guard"  # a tie in triples: the default stays
