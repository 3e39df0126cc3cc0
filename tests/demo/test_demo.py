"""``lcsc demo --quick``: the smoke test CI runs — every report file exists and the table is complete and finite;
the models folder rebuilds and re-scores; the protocol holds."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lcsc import protocol
from lcsc.cli.main import main
from lcsc.demo.report import REPORT_KEYS
from lcsc.errors import ConfigError
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.scoring import check_seed_separation
from lcsc.objectives.base import noise_fingerprint
from tests.demo.analyze_check import check_analyses
from tests.demo.protocol_check import NoiseRecorder, protocol_violations


def test_protocol_violations_catch_a_deliberate_leak(monkeypatch):
    """The checker itself can fail: a grid that sampled report noise and a search that built FD4 are both caught."""
    cfg = DemoConfig.quick()
    rec = NoiseRecorder.__new__(NoiseRecorder)
    search_fp = noise_fingerprint(torch.Generator().manual_seed(cfg.seed))
    held = [noise_fingerprint(torch.Generator().manual_seed(s)) for s in protocol.held_out_seeds(cfg.seed, 2)]
    rec.draws = [("grid", search_fp), ("search", search_fp), *[("other", h) for h in held]]
    rec.contexts = [("grid", "EMA* grid"), ("search", "LCSC search"), ("other", None)]
    rec.spaces = [("other", "digits"), ("other", "digits4")]
    assert protocol_violations(rec, cfg) == []
    rec.draws.append(("grid", held[0]))
    rec.spaces.append(("search", "digits4"))
    rec.contexts.append(("search", None))
    assert protocol_violations(rec, cfg) == [
        "a decision stage sampled noise other than the search / validation noise",
        "a decision stage sampled report noise", "a decision stage ran outside protocol.deciding()",
        "a decision stage built a report-only space"]


def test_quick_demo_end_to_end(quick_demo, tmp_path):
    """One test (one xdist worker) for everything that reads the quick demo: the report, the models folder, and
    every ``lcsc analyze`` of scripts/analyze_demo.sh on it."""
    _check_report(quick_demo)
    _check_models(quick_demo, tmp_path / "models")
    check_analyses(quick_demo[0], tmp_path / "analyses")


def _check_report(quick_demo) -> None:
    out, recorder, printed = quick_demo
    assert protocol_violations(recorder, DemoConfig.quick()) == []
    assert recorder.chosen_from and all(any(c == g for g in recorder.grid_finalists) for c in recorder.chosen_from)
    assert any(phase == "search" and seed == protocol.gradient_noise_seed(0, 0) for phase, seed in recorder.seeds)
    assert "LCSC" in printed and "EMA*" in printed
    report = out / "report"
    for name in ("report.md", "report.html", "report.json", "config.json", "stages.json", "command.json",
                 "samples.png", "coefficients.png", "search_progress.png", "loss.png"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    payload = json.loads((report / "report.json").read_text())
    rows, cfg = payload["rows"], DemoConfig.quick()
    main_rows = [r for r in rows if r["main"]]
    assert len(main_rows) == 18  # per model: EMA ×3, EMA* ×2, LCSC (the Alg. 1 export) ×2, LCSC gradient ×2
    assert {r["method"] for r in rows} == {"EMA", "EMA*", "LCSC", "LCSC gradient"}
    assert payload["export"] == "alg1" and payload["other_method"] == "LCSC gradient"
    for model in ("DM", "CM (CT)"):  # off the main table: EMA* at the other NFEs, the DM's LCSC searched at NFE 4
        extra = [r for r in rows if r["model"] == model and not r["main"] and r["method"].startswith("LCSC")]
        assert [(r["iteration"], r["nfe"]) for r in extra] == ([(cfg.iterations, 4)] if model == "DM" else [])
    exported = [r for r in rows if r["method"] == "LCSC" and r["main"]]
    assert all(r["detail"].startswith("Alg. 1, ") and "anchors" in r["detail"] and "guard exported" in r["detail"]
               for r in exported)
    grad = [r for r in rows if r["method"] == "LCSC gradient" and r["main"]]
    assert len(grad) == 4 and all(r["detail"].startswith("gradient, ") for r in grad)
    for model in ("DM", "CM (CT)"):  # EMA* at every curve point (≥ 8), the fixed EMA at the main table's points
        its = {r["iteration"] for r in rows if r["model"] == model and r["method"] == "EMA*"}
        assert its >= set(cfg.points) and len(its) >= 8, model
        assert {r["iteration"] for r in rows if r["model"] == model and r["method"] == "EMA"} == set(cfg.ema_points)
    for r in rows:
        assert set(REPORT_KEYS) <= set(r)
        for key in ("fd_mean", "fd_std", "fd2_mean", "fd3_mean", "fd4_mean"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (r, key)
        if r["main"]:
            assert all(isinstance(r[k], float) for k in ("kid_x1e3", "precision", "recall")), r
    early = [r for r in rows if r["method"].startswith("LCSC") and r["iteration"] == cfg.early_point]
    assert len(early) == 4 and all(r["speedup_iters"] > 0 and r["speedup_with_search"] > 0 for r in early)
    assert all(r["speedup_with_search"] <= r["speedup_iters"] for r in early)
    dm_star = {r["nfe"] for r in rows if r["model"] == "DM" and r["method"] == "EMA*" and r["iteration"] == cfg.iterations}
    assert dm_star == set(cfg.dm_nfes)
    assert set(payload["nfe_match"]) == {"dm", "cm", "dm@5", "cm@1", "dm@4"}
    assert payload["nfe_match"]["dm@4"]["lcsc_nfe"] == 4 and payload["nfe_match"]["dm@4"]["method"] == "LCSC gradient"
    assert payload["nfe_match"]["dm@5"]["method"] == "LCSC gradient" and payload["nfe_match"]["dm"]["method"] == "LCSC"
    assert {k: set(v) for k, v in payload["ema_star_interior"].items()} == \
        {"dm": {str(p) for p in cfg.points}, "cm": {str(p) for p in cfg.points}}
    for d in payload["ema_grid_scores"].values():  # online EMAs and post-hoc σ_rel grid at every point
        assert all(len(s) == len(cfg.half_lives) + len(cfg.sigma_rels) for s in d.values())
    md = (report / "report.md").read_text()
    assert all(set(r["initial"]) == {"fd_mean", "fd2_mean", "fd3_mean", "fd4_mean"} for r in exported)
    assert "FD4 (report-only" in md and "FD2 (searched)" in md and "FD3 (never searched)" in md
    assert md.count("Held-out gain: FD_digits (searched)") == 2
    assert f"| DM | LCSC | {cfg.early_point} | 5 |" in md and f"| DM | LCSC gradient | {cfg.iterations} | 5 |" in md and "## Time per stage" in md
    assert md.count("| CM (CT) | EMA |") == 3 and md.count("| CM (CT) | LCSC | FD") == 4  # NFE table: 4 spaces
    assert "Training cost: EMA\\* first reaches" in md and "matches LCSC gradient (searched at NFE 4)" in md
    assert f"LCSC gradient at {cfg.iterations} vs EMA\\*" in md and "## Models" in md
    assert f"../models/dm-lcsc-{cfg.iterations}.safetensors" in md
    for name in ("fd_vs_iteration.png", "fd_vs_nfe.png", "ema_grid.png"):
        assert (report / name).stat().st_size > 0
    assert "## Anchoring: window-only vs anchored LCSC" in md and "LCSC gradient anchored + guard" in md
    stages = json.loads((report / "stages.json").read_text())
    assert {f"LCSC gradient dm@{cfg.iterations}", f"LCSC gradient dm@{cfg.iterations} NFE 4", "models"} <= set(stages)
    assert f"LCSC dm@{cfg.iterations} window only" not in stages and stages["estimate_s"] > 0


def _check_models(quick_demo, tmp_path) -> None:
    """Every LCSC file: ``lcsc merge`` with its coefficient file gives the same tensors; ``lcsc eval`` on the
    report's first held-out seed gives the report row's first FD_digits."""
    from safetensors.torch import load_file

    tmp_path.mkdir()
    out = quick_demo[0]
    index = json.loads((out / "models" / "models.json").read_text())
    names = {f["file"] for f in index["files"]}
    cfg = DemoConfig.quick()
    want = {f"{m}-{k}-{p}.safetensors" for m in ("dm", "cm-ct") for k in ("ema-star", "lcsc", "lcsc-grad")
            for p in cfg.lcsc_points} | {f"dm-lcsc-grad-nfe4-{cfg.iterations}.safetensors"}
    assert names == want and all((out / "models" / n).is_file() for n in names)
    for f in index["files"]:
        if f["method"] == "EMA*":
            assert f["made_by"] and f["ema_star"] in f["made_by"] or "σ_rel" in f["made_by"]
            continue
        model, step = f["model"], f["step"]
        rebuilt = tmp_path / f["file"]
        assert main(["merge", str(out / model / "windows" / str(step)), "--coeffs",
                     str(out / "models" / f["coefficients"]), "-o", str(rebuilt)]) == 0
        a, b = load_file(str(rebuilt)), load_file(str(out / "models" / f["file"]))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f["file"]
    payload = json.loads((out / "report" / "report.json").read_text())
    row = next(r for r in payload["rows"] if r["model"] == "DM" and r["method"] == "LCSC" and r["main"]
               and r["iteration"] == cfg.iterations)
    seed = cfg.held_out_seeds[0]
    assert main(["eval", str(out / "models" / f"dm-lcsc-{cfg.iterations}.safetensors"), "--nfe", "5", "--samples",
                 str(cfg.eval_samples), "--metrics", "fd", "--features", "digits", "--noise-seed", str(seed),
                 "-o", str(tmp_path / "eval.json")]) == 0
    fd = json.loads((tmp_path / "eval.json").read_text())["rows"][0]["fd"]
    assert fd == pytest.approx(row["fd_per_seed"][0], rel=1e-9)


def test_demo_config_validation():
    with pytest.raises(ConfigError, match="early_fraction"):
        DemoConfig(early_fraction=1.5)
    with pytest.raises(ConfigError, match="default_ema_fraction"):
        DemoConfig(default_ema_fraction=0.3)
    assert DemoConfig().early_point == 800 and DemoConfig.quick().early_point == 80
    assert DemoConfig().points == (400, 800, 1200, 1600, 2000, 2400, 2800, 3200)
    assert len(DemoConfig().sigma_rels) >= 12
    with pytest.raises(ConfigError, match="dm_nfes"):
        DemoConfig(dm_nfes=(4, 6, 8))  # must hold the searched NFE 5
    with pytest.raises(ConfigError, match="multiple of 32"):
        DemoConfig(iterations=3000)
    with pytest.raises(ConfigError, match="search_objective 'fd-digits3'"):
        DemoConfig(search_objective="fd-digits3")
    with pytest.raises(ConfigError, match="optimizer 'nelder'"):
        DemoConfig(search_optimizer="nelder")
    cfg = DemoConfig(search_optimizer="sep-cmaes", search_space="ema-basis:8", search_racing=True)
    sc = cfg.search_config(40)
    assert (sc.evals, sc.optimizer, sc.space, sc.racing, sc.seed) == (40, "sep-cmaes", "ema-basis:8", True, 0)


def test_demo_search_noise_never_meets_held_out_noise(monkeypatch):
    for seed in range(4):
        for cfg in (DemoConfig(seed=seed), DemoConfig.quick(seed=seed)):
            noise = check_seed_separation(cfg)
            assert len(noise["held_out"]) == cfg.eval_seeds and not noise["search"] & noise["held_out"]
    monkeypatch.setattr("lcsc.protocol.REPORT_NOISE_OFFSET", 2**32)  # another integer, the same noise
    with pytest.raises(ConfigError, match="draws the same noise as a search seed"):
        check_seed_separation(DemoConfig())


def test_demo_switches_turn_anchoring_and_the_window_baseline_off():
    import argparse

    from lcsc.cli import demo_cmd

    sub = argparse.ArgumentParser().add_subparsers()
    demo_cmd.register(sub)
    parser = sub.choices["demo"]
    default = demo_cmd.config_from_args(parser.parse_args([]))
    assert default.anchored and not default.window_only_baseline and default.guard_finalists == 4
    assert default.gradient and default.export == "alg1" and default.dm_low_nfe == 4
    off = demo_cmd.config_from_args(parser.parse_args(["--no-anchors", "--no-window-baseline", "--guard-finalists", "2"]))
    assert not off.anchored and not off.window_only_baseline and off.guard_finalists == 2
    on = demo_cmd.config_from_args(parser.parse_args(["--window-baseline", "--no-gradient", "--dm-low-nfe", "0"]))
    assert on.window_only_baseline and not on.gradient and on.export == "alg1" and on.dm_low_nfe == 0
    with pytest.raises(ConfigError, match="export 'gradient'"):
        demo_cmd.config_from_args(parser.parse_args(["--no-gradient", "--export", "gradient"]))
    assert off.search_config(60, anchored=True).revalidate == 2 and default.search_config(60).revalidate == 0
