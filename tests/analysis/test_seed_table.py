"""The seed-robustness table counts, per model, on how many seeds each headline holds in every space."""

from __future__ import annotations

from lcsc.analysis.seed_table import seed_rows, seed_table


def _payload(seed: int, lcsc_fd3: float, speedup_claimed: bool) -> dict:
    def row(method, it, fd, fd3, **kw):
        return {"model": "DM", "method": method, "iteration": it, "nfe": 5, "main": True, "detail": "sigma-0.05",
                "fd_mean": fd, "fd2_mean": fd / 10, "fd3_mean": fd3, **kw}
    sp = {"speedup_iters": 1.5, "speedup_with_search": 1.2, "claimed": speedup_claimed}
    return {"config": {"iterations": 3200, "seed": seed}, "models": {"dm": "DM"},
            "rows": [row("EMA*", 3200, 20.0, 1.0), row("LCSC", 3200, 18.0, lcsc_fd3), row("LCSC", 800, 40.0, 2.0,
                                                                                          speedup=sp)],
            "nfe_match": {"dm": {"lcsc_nfe": 5, "ema_star_nfe": 7.5, "claimed": True}},
            "ema_star_interior": {"dm": {"800": True, "3200": seed != 2}}}


def test_seed_table_counts_what_holds_on_every_seed():
    payloads = [_payload(0, 0.9, True), _payload(1, 1.1, True), _payload(2, 0.8, False)]
    rows = seed_rows(payloads)
    assert [r["beats_everywhere"] for r in rows] == [True, False, True]  # seed 1: FD3 worse than EMA*'s
    assert rows[2]["edges"] == ["3200"] and not rows[2]["interior"]
    text = seed_table(payloads)
    assert "LCSC beats EMA* in every space on 2 of 3" in text
    assert "training-cost speed-up claimed on 2 of 3" in text and "NFE reduction claimed on 3 of 3" in text
    assert "EMA* interior at every point on 2 of 3" in text and "edge at 3200" in text


def test_seed_table_cli_refuses_a_file_that_is_not_a_demo_report(tmp_path, capsys):
    import pytest

    from lcsc.analysis.seed_table import main

    bad = tmp_path / "x.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(SystemExit) as exc:
        main([str(bad)])
    assert exc.value.code == 2 and "not a readable lcsc demo report.json" in capsys.readouterr().err


def test_report_seeds_come_first_and_every_variant_is_counted_against_ema_star():
    from lcsc.analysis.seed_table import seed_table

    report, decision = _payload(3, 0.9, True), _payload(0, 0.9, True)
    report["rows"].append({"model": "DM", "method": "LCSC window only", "iteration": 3200, "nfe": 5, "main": False,
                           "fd_mean": 25.0, "fd2_mean": 1.0, "fd3_mean": 0.5, "detail": ""})
    text = seed_table([decision, report])
    assert text.index("## Report seeds 3, 4, 5") < text.index("## Decision seeds 0, 1, 2")
    report_part = text[:text.index("## Decision seeds")]
    # window only: FD_digits 25 > 20 (worse), FD2 1.0 < 2.0, FD3 0.5 < 1.0 → 2 of 3; anchored: 18 / 1.8 / 0.9 → 3 of 3
    assert "window only 2 of 3" in report_part and "Alg. 1 + guard 3 of 3" in report_part  # no "export": Alg. 1's
    assert "25.0 / 1.000 / 0.500 (2/3)" in report_part


def test_a_gradient_export_is_its_own_column_beside_alg1_and_the_low_nfe_search_is_read():
    payload = _payload(4, 0.9, True)
    payload["export"], payload["other_method"] = "gradient", "LCSC Alg. 1"
    payload["rows"].append({"model": "DM", "method": "LCSC Alg. 1", "iteration": 3200, "nfe": 5, "main": True,
                            "fd_mean": 21.0, "fd2_mean": 1.9, "fd3_mean": 0.95, "detail": ""})
    payload["nfe_match"]["dm@4"] = {"lcsc_nfe": 4, "ema_star_nfe": 8.5, "claimed": True,
                                    "by_space": {"fd_mean": "9.0", "fd2_mean": "8.5", "fd3_mean": "8.7"}}
    row = seed_rows([payload])[0]
    assert row["variants"]["gradient + guard"]["fd_mean"] == 18.0  # the LCSC row is the gradient export
    assert row["variants"]["Alg. 1 + guard"]["fd_mean"] == 21.0
    text = seed_table([payload])
    # Alg. 1: 21 > 20 (worse), 1.9 < 2.0, 0.95 < 1.0 → 2 of 3; the export 3 of 3; EMA* needs 8.5 ≥ 2 × 4 NFE
    assert "Alg. 1 + guard 2 of 3; gradient + guard 3 of 3" in text
    assert "LCSC@4 ≈ EMA*@8.5: 9.0 / 8.5 / 8.7" in text and "in every space on 1 of 1" in text
    assert "mean over seeds -10.0 %" in text
    # the search beside the export: its FDs, and the NFE at which EMA* matches it (computed from the EMA* rows)
    assert row["other"]["fd"]["fd_mean"] == 21.0 and row["other"]["speedup"] is None
    assert not row["other"]["nfe_claimed"] and "The search beside the export (LCSC Alg. 1)" in text
