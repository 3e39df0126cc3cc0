"""The demo reports KID ×10³ and names its feature space (FD_digits), in report.json rows and the table."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lcsc.demo.report import REPORT_KEYS, report_payload, table_columns
from lcsc.demo.run import DemoRow
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.scoring import HeldOutScore


def _row(kid: float) -> DemoRow:
    score = HeldOutScore(fd_mean=3.0, fd_std=0.1, fd2_mean=0.2, fd2_std=0.01, kid=kid, precision=0.7, recall=0.6,
                         fd3_mean=0.3, fd3_std=0.02)
    return DemoRow("DM", "LCSC", 640, 5, score)


def test_rows_carry_kid_x1e3_and_the_table_labels_it():
    d = _row(0.0025).to_dict()
    assert d["kid_x1e3"] == pytest.approx(2.5) and "kid" not in d and "kid_x1e3" in REPORT_KEYS
    assert _row(float("nan")).to_dict()["kid_x1e3"] is None  # not scored (non-main rows)
    label, cell = next(c for c in table_columns(False) if c[0].startswith("KID"))
    assert label == "KID×10³ ↓ (FD_digits)" and cell({**d, "detail": ""}) == "2.5"


def test_report_json_states_kid_units():
    res = SimpleNamespace(runs={}, other_searches={}, models={}, other_method="LCSC Alg. 1", rows=[_row(0.0025)], nfe_match={}, ema_star={}, interior={},
                          config=DemoConfig.quick())
    payload = report_payload(res)
    assert payload["rows"][0]["kid_x1e3"] == pytest.approx(2.5)
    assert payload["kid_units"].startswith("kid_x1e3 = 1,000 × the unbiased cubic-polynomial MMD²")
    assert "FD_digits features" in payload["kid_units"]
