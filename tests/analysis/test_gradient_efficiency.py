"""The gradient benchmark's rule and tables on hand-made cells: the rule reads decision seeds on check noise only,
prefers settings within Alg. 1's cost, counts wins per (seed, model, space); sample efficiency finds the first
trajectory point at Alg. 1's long-budget level."""

from __future__ import annotations

import pytest

from lcsc.analysis.gradient_efficiency import decide_setting
from lcsc.analysis.gradient_report import counts, efficiency
from lcsc.protocol import ProtocolError


def _cell(seed, model, grad: dict[str, tuple[float, float]], noise="decision"):
    """EMA* at 10, Alg. 1 at 8 (cost 100 core-s) in two spaces; grad rows: name → (FD, core-s)."""
    rows = {"EMA*": {"scores": {"digits": 10.0, "digits2": 10.0}},
            "alg1": {"scores": {"digits": 8.0, "digits2": 8.0}, "cpu_s": 100.0, "samples": 1000}}
    for name, (fd, cpu) in grad.items():
        rows[f"grad-{name}"] = {"scores": {"digits": fd, "digits2": fd}, "cpu_s": cpu, "samples": 500, "steps": 40}
        rows[f"grad-{name}@10"] = {"scores": {"digits": fd + 1, "digits2": fd + 1}, "samples": 200, "steps": 10}
    return {"seed": seed, "model": model, "held_out_noise": noise, "rows": rows}


def test_the_rule_prefers_the_best_setting_within_alg1s_cost():
    cells = [_cell(s, m, {"cheap": (7.0, 90.0), "better": (5.0, 150.0)}) for s in (0, 1) for m in ("dm", "cm-ct")]
    decision = decide_setting(cells, ["cheap", "better"])
    assert decision["chosen"] == "cheap"  # "better" costs 1.5x Alg. 1
    assert decision["table"]["cheap"]["wins"] == 8 and decision["table"]["better"]["wins"] == 8
    cells = [_cell(s, m, {"a": (7.0, 90.0), "b": (9.0, 50.0)}) for s in (0, 1) for m in ("dm", "cm-ct")]
    assert decide_setting(cells, ["a", "b"])["chosen"] == "a"  # b is cheaper but loses to Alg. 1


def test_the_rule_refuses_report_seeds_and_report_noise():
    with pytest.raises(ProtocolError):
        decide_setting([_cell(3, "dm", {"a": (7.0, 90.0)})], ["a"])
    with pytest.raises(ProtocolError):
        decide_setting([_cell(0, "dm", {"a": (7.0, 90.0)}, noise="report")], ["a"])


def test_counts_and_sample_efficiency():
    cells = [_cell(0, "dm", {"a": (9.0, 80.0)}), _cell(1, "dm", {"a": (7.0, 80.0)})]
    c = counts(cells, "grad-a")
    assert (c["triples"], c["below_ema_star"], c["below_alg1"]) == (4, 4, 2)
    eff = efficiency(cells, "a", {"dm": 8.5}, {"dm": {"samples": 2000, "cpu_s": 400.0}}, (10,))
    assert eff["dm"]["reached"]["steps"] == 40 and eff["dm"]["reached"]["samples_fraction"] == 0.25
    assert eff["dm"]["reached"]["cpu_fraction"] == 0.2
    eff = efficiency(cells, "a", {"dm": 9.5}, {"dm": {"samples": 2000, "cpu_s": 400.0}}, (10,))
    assert eff["dm"]["reached"]["steps"] == 10 and eff["dm"]["reached"]["samples"] == 200
    assert efficiency(cells, "a", {"dm": 7.0}, {"dm": {"samples": 2000, "cpu_s": 400.0}}, (10,))["dm"]["reached"] is None
