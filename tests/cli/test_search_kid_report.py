"""``lcsc search`` with a KID objective: scores stay raw MMD² (the journal's units); the report adds KID×10³."""

from __future__ import annotations

from types import SimpleNamespace

from lcsc.cli.search_cmd import _report


def _result(best: float) -> SimpleNamespace:
    return SimpleNamespace(best_score=best, evaluations=6, objective_calls=6, stopped="evals", wall_time_s=1.0,
                           init_scores={"hl-100": 0.0005}, failures=[])


def test_search_report_gives_kid_x1e3_with_its_feature_space(capsys):
    kid = SimpleNamespace(metric="kid", direction="minimize", features=SimpleNamespace(name="digits2"))
    _report(_result(0.00042), kid)
    out = capsys.readouterr().out
    assert "best min score 0.00042 " in out and "raw MMD² in digits2 features" in out
    assert "KID×10³ (digits2): 0.42)" in out
    _report(_result(3.5), SimpleNamespace(metric="fd", direction="minimize", features=SimpleNamespace(name="digits")))
    assert "KID" not in capsys.readouterr().out
