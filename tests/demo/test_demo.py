"""``lcsc demo --quick``: the smoke test CI runs — every report file exists and the table is complete and finite."""

from __future__ import annotations

import json
import math

import pytest

from lcsc.cli.main import main
from lcsc.demo.config import DemoConfig
from lcsc.demo.report import REPORT_KEYS
from lcsc.errors import ConfigError


def test_quick_demo_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "LCSC" in printed and "EMA*" in printed
    report = out / "report"
    for name in ("report.md", "report.html", "report.json", "config.json", "stages.json", "command.json",
                 "samples.png", "coefficients.png", "search_progress.png", "loss.png"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    rows = json.loads((report / "report.json").read_text())
    assert len(rows) == 14  # per model: EMA ×3, EMA* ×2, LCSC ×2
    assert {(r["model"], r["method"]) for r in rows} >= {("DM", "LCSC"), ("CM (CT)", "EMA*")}
    for r in rows:
        assert set(REPORT_KEYS) <= set(r)
        for key in ("fd_mean", "fd_std", "fd2_mean", "fd3_mean", "kid", "precision", "recall"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (r, key)
        assert r["speedup"] is None or (math.isfinite(r["speedup"]) and r["speedup"] > 0)
    lcsc = [r for r in rows if r["method"] == "LCSC"]
    assert all(set(r["initial"]) == {"fd_mean", "fd2_mean", "fd3_mean"} for r in lcsc)
    md = (report / "report.md").read_text()
    assert md.count("Held-out gain: FD_digits (searched)") == 2 and "FD3 (never searched)" in md
    assert "FD2 (searched)" in md  # the default objective is the mean of FD_digits and FD2
    assert md.count("| DM | LCSC |") == 2 and md.count("| CM (CT) | EMA |") == 3 and "## Time per stage" in md
    stages = json.loads((report / "stages.json").read_text())
    assert any(k.startswith("LCSC dm@") for k in stages)


def test_demo_config_validation():
    with pytest.raises(ConfigError, match="early_fraction"):
        DemoConfig(early_fraction=1.5)
    with pytest.raises(ConfigError, match="default_ema_fraction"):
        DemoConfig(default_ema_fraction=0.3)
    assert DemoConfig().early_point == 800 and DemoConfig.quick().early_point == 150
    with pytest.raises(ConfigError, match="search_objective 'fd-digits3'"):
        DemoConfig(search_objective="fd-digits3")
    with pytest.raises(ConfigError, match="optimizer 'nelder'"):
        DemoConfig(search_optimizer="nelder")
    cfg = DemoConfig(search_optimizer="sep-cmaes", search_space="ema-basis:8", search_racing=True)
    sc = cfg.search_config(40)
    assert (sc.evals, sc.optimizer, sc.space, sc.racing, sc.seed) == (40, "sep-cmaes", "ema-basis:8", True, 0)
