"""``lcsc demo --quick``: the smoke test CI runs — every report file exists and the table is complete and finite."""

from __future__ import annotations

import json
import math

import pytest
import torch

import lcsc.generate
import lcsc.objectives.generative
from lcsc import protocol
from lcsc.cli.main import main
from lcsc.demo import run as demo_run
from lcsc.demo import scoring as demo_scoring
from lcsc.demo.config import DemoConfig
from lcsc.demo.report import REPORT_KEYS
from lcsc.demo.scoring import check_seed_separation
from lcsc.errors import ConfigError
from lcsc.objectives.base import VALIDATION_SEED_OFFSET, noise_fingerprint


class _NoiseRecorder:
    """Records the noise of every sampling run (as a fingerprint) with the demo stage it happened in and the
    protocol's decision context, every feature space built with its stage, and which finalist scores EMA* was chosen
    from."""

    def __init__(self, monkeypatch) -> None:
        self.phase, self.draws, self.grid_finalists, self.chosen_from = "other", [], [], []
        self.contexts, self.spaces = [], []
        for module in (lcsc.generate, lcsc.objectives.generative):
            monkeypatch.setattr(module, "draw_inputs", self._recording(module.draw_inputs))
        build = demo_scoring.feature_space
        monkeypatch.setattr(demo_scoring, "feature_space",
                            lambda name, *a, **kw: (self.spaces.append((self.phase, name)), build(name, *a, **kw))[1])
        monkeypatch.setattr(demo_run, "ema_grid_scores", self._phase("grid", demo_run.ema_grid_scores))
        monkeypatch.setattr(demo_run, "lcsc_search", self._phase("search", demo_run.lcsc_search))
        choice = demo_run.ema_star_choice
        monkeypatch.setattr(demo_run, "ema_star_choice", lambda cfg, s: (self.chosen_from.append(s), choice(cfg, s))[1])

    def _recording(self, fn):
        def draw(config, n, generator, **kw):
            g = torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator
            clone = torch.Generator()
            clone.set_state(g.get_state())
            self.draws.append((self.phase, noise_fingerprint(clone)))
            self.contexts.append((self.phase, protocol.decision_context()))
            return fn(config, n, g, **kw)
        return draw

    def _phase(self, name: str, fn):
        def wrapped(run, cfg, *args, **kw):
            self.phase = name
            try:
                return fn(run, cfg, *args, **kw)
            finally:
                self.phase = "other"
                if name == "grid":
                    self.grid_finalists.extend(run.ema_finalists.values())
        return wrapped


def protocol_violations(recorder: _NoiseRecorder, cfg: DemoConfig) -> list[str]:
    """What a demo run did against the protocol: decision stages (EMA* grid, LCSC search) sampling anything but
    search / validation noise, or outside a protocol decision context, or building a report-only space; held-out
    rows not on report noise; FD4 never scored."""
    noise, out = check_seed_separation(cfg), []
    validation = noise_fingerprint(torch.Generator().manual_seed(cfg.seed + VALIDATION_SEED_OFFSET))
    report = {noise_fingerprint(torch.Generator().manual_seed(s)) for s in protocol.held_out_seeds(cfg.seed, 8)}
    chosen_on = {fp for phase, fp in recorder.draws if phase in ("grid", "search")}
    if not chosen_on or not chosen_on <= noise["search"] | {validation}:
        out.append("a decision stage sampled noise other than the search / validation noise")
    if chosen_on & report:
        out.append("a decision stage sampled report noise")
    if any(phase in ("grid", "search") and ctx is None for phase, ctx in recorder.contexts):
        out.append("a decision stage ran outside protocol.deciding()")
    if any(phase != "other" and name in protocol.REPORT_SPACES for phase, name in recorder.spaces):
        out.append("a decision stage built a report-only space")
    reported_on = {fp for phase, fp in recorder.draws if phase == "other"}
    if not noise["held_out"] <= reported_on or not noise["held_out"] <= report:
        out.append("the held-out rows are not on report noise")
    if ("other", "digits4") not in recorder.spaces:
        out.append("the report-only space FD4 was never scored")
    return out


def test_protocol_violations_catch_a_deliberate_leak(monkeypatch):
    """The checker itself can fail: a grid that sampled report noise and a search that built FD4 are both caught."""
    cfg = DemoConfig.quick()
    rec = _NoiseRecorder.__new__(_NoiseRecorder)
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


def test_quick_demo_writes_a_complete_report(tmp_path, capsys, monkeypatch):
    out, recorder = tmp_path / "demo", _NoiseRecorder(monkeypatch)
    assert main(["demo", "--quick", "-o", str(out)]) == 0
    assert protocol_violations(recorder, DemoConfig.quick()) == []
    assert recorder.chosen_from and all(any(c is g for g in recorder.grid_finalists) for c in recorder.chosen_from)
    printed = capsys.readouterr().out
    assert "LCSC" in printed and "EMA*" in printed
    report = out / "report"
    for name in ("report.md", "report.html", "report.json", "config.json", "stages.json", "command.json",
                 "samples.png", "coefficients.png", "search_progress.png", "loss.png"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    payload = json.loads((report / "report.json").read_text())
    rows, cfg = payload["rows"], DemoConfig.quick()
    main_rows = [r for r in rows if r["main"]]
    assert len(main_rows) == 14  # per model: EMA ×3, EMA* ×2, LCSC ×2
    assert {"EMA", "EMA*", "LCSC", "LCSC window only", "LCSC shrink 0.5", "LCSC shrink 0.75"} <= \
        {r["method"] for r in rows} <= {"EMA", "EMA*", "LCSC", "LCSC window only", "LCSC shrink 0.5",
                                        "LCSC shrink 0.75"}
    for model in ("DM", "CM (CT)"):  # the anchoring rows: at the end of training, at the searched NFE, not main
        extra = [r for r in rows if r["model"] == model and r["method"].startswith("LCSC ")]
        assert extra and all(r["iteration"] == cfg.iterations and not r["main"] for r in extra)
    anchored = [r for r in rows if r["method"] == "LCSC" and r["main"]]
    assert all("anchors" in r["detail"] and "guard exported" in r["detail"] for r in anchored)
    for model in ("DM", "CM (CT)"):  # EMA* at every curve point (≥ 8), the fixed EMA at the main table's points
        its = {r["iteration"] for r in rows if r["model"] == model and r["method"] == "EMA*"}
        assert its >= set(cfg.points) and len(its) >= 8, model
        assert {r["iteration"] for r in rows if r["model"] == model and r["method"] == "EMA"} == set(cfg.ema_points)
    for r in rows:
        assert set(REPORT_KEYS) <= set(r)
        for key in ("fd_mean", "fd_std", "fd2_mean", "fd3_mean"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (r, key)
        if r["main"]:
            assert all(isinstance(r[k], float) for k in ("kid_x1e3", "precision", "recall")), r
    early = [r for r in rows if r["method"] == "LCSC" and r["iteration"] == cfg.early_point]
    assert len(early) == 2 and all(r["speedup_iters"] > 0 and r["speedup_with_search"] > 0 for r in early)
    assert all(r["speedup_with_search"] <= r["speedup_iters"] for r in early)
    dm_nfes = {r["nfe"] for r in rows if r["model"] == "DM" and r["method"] == "LCSC" and r["iteration"] == 640}
    assert dm_nfes == set(cfg.dm_nfes)
    assert set(payload["nfe_match"]) == {"dm", "cm"} and payload["nfe_match"]["dm"]["lcsc_nfe"] == cfg.dm_nfe
    assert {k: set(v) for k, v in payload["ema_star_interior"].items()} == \
        {"dm": {str(p) for p in cfg.points}, "cm": {str(p) for p in cfg.points}}
    assert all(isinstance(v, bool) for d in payload["ema_star_interior"].values() for v in d.values())
    for d in payload["ema_grid_scores"].values():  # online EMAs and post-hoc σ_rel grid at every point
        assert all(len(s) == len(cfg.half_lives) + len(cfg.sigma_rels) for s in d.values())
    lcsc = [r for r in rows if r["method"] == "LCSC" and r["main"]]
    md = (report / "report.md").read_text()
    assert all(set(r["initial"]) == {"fd_mean", "fd2_mean", "fd3_mean", "fd4_mean"} for r in lcsc)
    assert all(isinstance(r["fd4_mean"], float) and math.isfinite(r["fd4_mean"]) for r in rows)
    assert "FD4 (report-only" in md
    assert md.count("Held-out gain: FD_digits (searched)") == 2 and "FD3 (never searched)" in md
    assert "FD2 (searched)" in md  # the default objective is the worst of FD_digits and FD2 (max:)
    assert "| DM | LCSC | 160 | 5 |" in md and "| DM | LCSC | 640 | 5 |" in md and "## Time per stage" in md
    assert md.count("| CM (CT) | EMA |") == 3 and md.count("| CM (CT) | LCSC | FD") == 4  # NFE table: FD_digits, FD2, FD3, FD4
    assert "Training cost: EMA\\* first reaches" in md and "NFE: EMA\\* at the end of training" in md
    for name in ("fd_vs_iteration.png", "fd_vs_nfe.png", "ema_grid.png"):
        assert (report / name).stat().st_size > 0
    assert "## Anchoring: window-only vs anchored LCSC" in md and "LCSC anchored + guard (exported)" in md
    stages = json.loads((report / "stages.json").read_text())
    assert f"LCSC dm@{cfg.iterations} window only" in stages
    assert any(k.startswith("LCSC dm@") for k in stages) and stages["estimate_s"] > 0


def test_demo_config_validation():
    with pytest.raises(ConfigError, match="early_fraction"):
        DemoConfig(early_fraction=1.5)
    with pytest.raises(ConfigError, match="default_ema_fraction"):
        DemoConfig(default_ema_fraction=0.3)
    assert DemoConfig().early_point == 800 and DemoConfig.quick().early_point == 160
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
    assert default.gradient and default.export == "gradient" and default.dm_low_nfe == 4
    off = demo_cmd.config_from_args(parser.parse_args(["--no-anchors", "--no-window-baseline", "--guard-finalists", "2"]))
    assert not off.anchored and not off.window_only_baseline and off.guard_finalists == 2
    on = demo_cmd.config_from_args(parser.parse_args(["--window-baseline", "--no-gradient", "--dm-low-nfe", "0"]))
    assert on.window_only_baseline and not on.gradient and on.export == "alg1" and on.dm_low_nfe == 0
    with pytest.raises(ConfigError, match="export 'gradient'"):
        demo_cmd.config_from_args(parser.parse_args(["--no-gradient", "--export", "gradient"]))
    assert off.search_config(60, anchored=True).revalidate == 2 and default.search_config(60).revalidate == 0
