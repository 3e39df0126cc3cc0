"""The search-efficiency benchmark: best-so-far from journals, gains, sample efficiency, and the --quick smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lcsc.analysis.search_efficiency import METHODS, best_so_far
from lcsc.analysis.search_summary import (
    best_method,
    curves,
    efficiency,
    gains,
    generalises,
    summary_line,
    unseen,
)
from lcsc.search.journal import Journal
from tests.output import run_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_efficiency.py"


def _journal(records: list[tuple[int, str, float, int]]) -> Journal:
    recs = [{"index": i, "candidate": c, "stage": st, "score": s, "status": "ok", "samples": n, "hash": f"h{c}",
             "coefficients": [[float(c)]]} for i, (c, st, s, n) in enumerate(records)]
    return Journal(Path("x"), {}, recs)


def test_best_so_far_uses_full_scores_and_counts_samples() -> None:
    j = _journal([(0, "full", 5.0, 100), (1, "full", 4.0, 100), (2, "race", 1.0, 25), (3, "race", 3.0, 25),
                  (2, "full", 3.5, 100), (4, "race", 0.5, 25)])
    pts = best_so_far(j, [2, 4, 5, 9])
    assert [p["evals"] for p in pts] == [2, 4, 5]  # the run never reached 9 candidates
    assert [p["candidate"] for p in pts] == [1, 2, 2]  # candidate 4's racing score never selects
    assert [p["samples"] for p in pts] == [200, 350, 375]


def _job(model, method, seed, final: dict, init: dict, search=10.0, evals=(6, 50, 100)):
    pts = []
    for e in evals:
        held = init if e == evals[0] else final
        pts.append({"evals": e, "samples": e * 10, "init": e == evals[0], "held_out": held,
                    "search": {"digits": search if e != evals[0] else 2 * search}})
    return {"model": model, "method": method, "train_seed": seed, "search_seed": 0, "evals": evals[-1],
            "held_out_noise": "decision",
            "points": pts, "method_spec": {"objective": list(METHODS[method].objective)}}


def test_gains_generalisation_and_efficiency_are_computed_exactly() -> None:
    star = {"digits": 10.0, "digits2": 1.0, "digits3": 2.0}
    ema = [{"model": "dm", "train_seed": s, "held_out": star, "held_out_noise": "decision"} for s in (0, 1)]
    jobs = []
    for s in (0, 1):
        jobs.append(_job("dm", "alg1", s, {"digits": 8.0, "digits2": 1.1, "digits3": 1.9}, star, search=5.0))
        jobs.append(_job("dm", "alg1-mean12", s, {"digits": 7.0, "digits2": 0.9, "digits3": 1.6}, star, search=6.0,
                         evals=(6, 50, 100)))
    cur, g = curves(jobs), gains(jobs, ema)
    assert [r["evals"] for r in cur["dm"]["alg1"]] == [6, 50, 100]
    assert g["dm"]["alg1"]["mean"]["digits"] == pytest.approx(0.2)
    assert g["dm"]["alg1"]["mean"]["digits2"] == pytest.approx(-0.1)
    assert not generalises(g["dm"]["alg1"], unseen({"objective": ["digits"]}), ["digits"])  # digits2 got worse
    assert generalises(g["dm"]["alg1-mean12"], ["digits3"], ["digits", "digits2"])  # +20 % ≥ ½ of +20 %
    assert best_method(cur) == "alg1-mean12"  # the only non-baseline method
    eff = efficiency(cur, "dm", "alg1-mean12")
    assert eff["evals"] == 50 and eff["efficiency"] == 2.0 and eff["target"] == 8.0
    line = summary_line(cur, g, {n: {"objective": list(METHODS[n].objective)} for n in ("alg1", "alg1-mean12")})
    assert line["sample_efficiency"] == {"dm": 2.0} and line["evals_to_match_alg1"] == {"dm": 50}
    assert line["unseen_gain"]["alg1-mean12"]["dm"] == {"digits3": 0.2}
    assert set(line["unseen_gain"]["alg1"]["dm"]) == {"digits2", "digits3"}


def _curve(*search_digits: float | None) -> list[dict]:
    return [{"evals": 10 * (i + 1), "search_digits": v} for i, v in enumerate(search_digits)]


def test_best_method_picks_the_lowest_mean_ratio_at_the_maximum_budget() -> None:
    """Six candidates, each the winner under a plausible wrong rule; the right one is listed fourth."""
    cur = {
        "dm": {"a-listed-first": _curve(9.5), "t-absolute": _curve(10.0), "t-early": _curve(2.0, 10.0),
               "winner": _curve(7.0), "t-one-model": _curve(4.0), "t-posthoc": _curve(1.0, None), "alg1": _curve(10.0)},
        "cm": {"a-listed-first": _curve(95.0), "t-absolute": _curve(80.0), "t-early": _curve(20.0, 100.0),
               "winner": _curve(90.0), "t-one-model": _curve(130.0), "t-posthoc": _curve(10.0, None),
               "alg1": _curve(100.0)},
        "no-baseline": {"t-absolute": _curve(0.1), "winner": _curve(50.0)},  # skipped: nothing to divide by
    }
    # search FD / alg1's, averaged over dm and cm: a 0.95, absolute 0.9 (lowest raw mean, 45), early 1.0 (0.2 before
    # the maximum budget), winner 0.8, one-model 0.85 (best on dm alone), post-hoc none (excluded)
    assert best_method(cur) == "winner"
    assert best_method({"dm": {"alg1": _curve(10.0), "t-posthoc": _curve(None)}}) == "alg1"  # nothing to compare


def _in_process(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """The benchmark run in this process (a run that trains nothing): (exit code, stdout, stderr)."""
    code, out, err = run_script(SCRIPT, args, monkeypatch, capsys)
    return (code if isinstance(code, int) else 1), out, err


def test_search_efficiency_quick_smoke(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "se"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--methods", "alg1,sep-cmaes-mean12-race",
                           "--out", str(out), "--cache", str(tmp_path / "cache"), "--workers", "2"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(line) == {"max_evals", "alg1_heldout_fd", "best_method", "evals_to_match_alg1",
                         "samples_to_match_alg1", "sample_efficiency", "unseen_gain"}
    assert line["max_evals"] == {"cm-ct": 24, "dm": 16} and line["best_method"] == "sep-cmaes-mean12-race"
    assert set(line["unseen_gain"]["sep-cmaes-mean12-race"]["dm"]) == {"digits3"}
    saved = json.loads((out / "search_efficiency.json").read_text())
    assert saved["summary"] == line and (out / "search_efficiency.png").stat().st_size > 0
    assert "| alg1 |" in (out / "search_efficiency.md").read_text()
    code, stdout, _ = _in_process(["--quick", "--methods", "alg1,sep-cmaes-mean12-race", "--out", str(out),
                                   "--report-only"], monkeypatch, capsys)
    assert code == 0 and json.loads(stdout.strip().splitlines()[-1]) == line
    code, _, stderr = _in_process(["--methods", "nope", "--out", str(out)], monkeypatch, capsys)
    assert code == 2 and "unknown ['nope']" in stderr
    code, _, stderr = _in_process(["--quick", "--seeds", "0,4", "--out", str(tmp_path / "r")], monkeypatch, capsys)
    assert code == 2 and "training seed 4 is a report seed" in stderr
    assert not (tmp_path / "r").exists()
    jobs = [json.loads(p.read_text()) for p in (out / "jobs").glob("*.json")]
    assert jobs and all(j["held_out_noise"] == "decision" and j["train_seed"] == 0 for j in jobs)
    assert all("digits4" not in j.get("spaces", []) for j in jobs)


def test_rules_refuse_report_data_and_the_objective_decision_follows_its_rule() -> None:
    from lcsc.analysis.search_summary import objective_decision
    from lcsc.protocol import ProtocolError

    star = {"digits": 10.0, "digits2": 1.0, "digits3": 2.0}
    ema = [{"model": m, "train_seed": s, "held_out": star, "held_out_noise": "decision"} for m in ("dm", "cm-ct")
           for s in (0, 1)]
    finals = {"alg1": {"digits": 8.0, "digits2": 1.1, "digits3": 1.9},  # FD2 worse than EMA*: does not generalise
              "alg1-mean12": {"digits": 9.5, "digits2": 0.99, "digits3": 1.98},  # FD3 gain 1 % < half of seen: no
              "alg1-max12": {"digits": 9.0, "digits2": 0.95, "digits3": 1.8}}  # FD3 gain 10 % ≥ half of 7.5 %: yes
    jobs = [_job(m, meth, s, f, star) for m in ("dm", "cm-ct") for meth, f in finals.items() for s in (0, 1)]
    specs = {j["method"]: j["method_spec"] for j in jobs}
    d = objective_decision(gains(jobs, ema), specs)
    assert d["qualifies"] == {"fd-digits": False, "mean:fd-digits,fd-digits2": False,
                              "max:fd-digits,fd-digits2": True}
    assert d["chosen"] == "max:fd-digits,fd-digits2" and "does not qualify" in d["reason"]
    finals["alg1-mean12"] = {"digits": 9.0, "digits2": 0.95, "digits3": 1.9}  # FD3 5 % ≥ half of 7.5 %: qualifies
    jobs = [_job(m, meth, s, f, star) for m in ("dm", "cm-ct") for meth, f in finals.items() for s in (0, 1)]
    d = objective_decision(gains(jobs, ema), specs)
    assert d["chosen"] == "mean:fd-digits,fd-digits2" and d["reason"] == "the default qualifies"
    with pytest.raises(ProtocolError, match="training seed 3"):
        gains([_job("dm", "alg1", 3, star, star)], ema)
    with pytest.raises(ProtocolError, match="'report' noise"):
        curves([{**_job("dm", "alg1", 0, star, star), "held_out_noise": "report"}])
