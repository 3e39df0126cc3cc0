"""The distillation benchmark's arithmetic: speed-ups (iterations, images, with the search), costs, convergence, and
its configuration (runs, windows, seeds, a folder holding another configuration)."""

from __future__ import annotations

import json

import pytest

from lcsc.distill.analysis import convergence, speedup_entry
from lcsc.distill.config import DistillConfig
from lcsc.distill.costs import break_even_iterations, paper_cd_cost, run_cost, with_search_speedup
from lcsc.distill.run import check_out_folder
from lcsc.errors import ConfigError

POINTS = [100, 200, 400, 800]
# the reference EMA* curve, held-out FD per space (FD4 too: report noise)
CURVE = [{"fd_mean": 100.0, "fd2_mean": 10.0, "fd3_mean": 20.0, "fd4_mean": 40.0},
         {"fd_mean": 60.0, "fd2_mean": 6.0, "fd3_mean": 12.0, "fd4_mean": 24.0},
         {"fd_mean": 40.0, "fd2_mean": 5.0, "fd3_mean": 10.0, "fd4_mean": 20.0},
         {"fd_mean": 30.0, "fd2_mean": 4.0, "fd3_mean": 9.0, "fd4_mean": 16.0}]


def test_speedup_in_images_is_the_iteration_speedup_times_the_batch_ratio():
    """LCSC at iteration 50 of a batch-16 run vs a batch-64 reference: FD_digits 50 is reached halfway between 200
    (60) and 400 (40), at 300; FD2 5.5 halfway between 200 and 400 too, at 300; FD3 11 at 300; FD4 22 at 300."""
    lcsc = {"fd_mean": 50.0, "fd2_mean": 5.5, "fd3_mean": 11.0, "fd4_mean": 22.0}
    e = speedup_entry(POINTS, CURVE, lcsc, 50, 16, 64, search_core_s=0.0, ref_core_s_per_image=1.0)
    for v in e["by_space"].values():
        assert v["crossing"] == pytest.approx(300.0)
        assert v["iters"] == pytest.approx(6.0)
        assert v["images"] == pytest.approx(v["iters"] * 64 / 16) == pytest.approx(24.0)
        assert v["with_search"] == pytest.approx(24.0)  # a free search changes nothing
    assert e["speedup_iters"] == pytest.approx(6.0) and e["speedup_images"] == pytest.approx(24.0)
    assert e["claimed"] and e["claimed_images"] and not e["lower_bound"]


def test_speedup_takes_the_worst_space_and_a_never_reached_space_is_a_lower_bound():
    """FD_digits 25 is never reached (> 800: 16× lower bound); FD2 6.0 is reached at 200 (4×): the claim is 4×."""
    lcsc = {"fd_mean": 25.0, "fd2_mean": 6.0, "fd3_mean": 9.0, "fd4_mean": 16.0}
    e = speedup_entry(POINTS, CURVE, lcsc, 50, 64, 64, search_core_s=0.0, ref_core_s_per_image=1.0)
    assert e["by_space"]["fd_mean"]["never"] and e["by_space"]["fd_mean"]["label"] == "> 800"
    assert e["by_space"]["fd_mean"]["iters"] == pytest.approx(16.0)
    assert e["speedup_iters"] == pytest.approx(4.0) and not e["lower_bound"]
    worse = speedup_entry(POINTS, CURVE, {**lcsc, "fd2_mean": 11.0}, 50, 64, 64, 0.0, 1.0)  # FD2 worse than the start
    assert worse["by_space"]["fd2_mean"]["at_start"] and worse["speedup_iters"] == pytest.approx(2.0)
    behind = speedup_entry(POINTS, CURVE, {**lcsc, "fd2_mean": 11.0}, 400, 64, 64, 0.0, 1.0)
    assert not behind["claimed"]  # reached at 100 by the reference, LCSC at 400: 0.25×


def test_the_search_counts_as_reference_training_in_images():
    """A search of 300 core-seconds at 0.5 core-s per reference image is 600 images: crossing 300 × 64 = 19,200
    images ÷ (50 × 16 + 600) = 13.714…"""
    lcsc = {"fd_mean": 50.0, "fd2_mean": 5.5, "fd3_mean": 11.0}
    e = speedup_entry(POINTS, [{k: r[k] for k in lcsc} for r in CURVE], lcsc, 50, 16, 64, 300.0, 0.5)
    assert e["speedup_with_search"] == pytest.approx(19_200 / 1_400)
    assert with_search_speedup(19_200, 800, 300.0, 0.5) == pytest.approx(19_200 / 1_400)


def test_cost_accounting_adds_up_on_a_hand_example():
    """CD, 1,000 iterations × batch 64 × 6 passes = 384,000; two searches of 90 evaluations × 1,000 samples × 1 NFE
    = 180,000 passes (46.875 %); 50 + 70 core-s of search vs 400 of training (30 %)."""
    c = run_cost("cm-cd", 1000, 64, 400.0, [{"evaluations": 90, "samples": 1000, "nfe": 1, "core_s": 50.0},
                                            {"evaluations": 90, "samples": 1000, "nfe": 1, "core_s": 70.0}])
    assert (c.train_passes, c.search_passes) == (384_000, 180_000)
    assert c.search_fraction_passes == pytest.approx(0.46875) and c.search_fraction_seconds == pytest.approx(0.3)
    dm = run_cost("dm", 10, 8, 1.0, [{"evaluations": 2, "samples": 5, "nfe": 9, "core_s": 1.0}])
    assert (dm.train_passes, dm.search_passes) == (240, 90)
    # one 60-core-s search at 0.4 core-s per iteration is 10 % of a 1,500-iteration run
    assert break_even_iterations(60.0, 0.4) == pytest.approx(1500.0)
    paper = paper_cd_cost()  # 800K × 512 × 6 vs 2K × 10K × 1
    assert paper.train_passes == 2_457_600_000 and paper.search_passes == 20_000_000
    assert paper.search_fraction_passes == pytest.approx(0.0081380, rel=1e-4)


def test_convergence_is_the_fall_over_the_last_quarter_in_every_space():
    rows = [{"iteration": p, "fd_mean": f, "fd2_mean": g, "fd3_mean": 1.0} for p, f, g in
            ((400, 50.0, 3.0), (600, 40.0, 2.0), (800, 39.0, 1.85))]
    c = convergence(rows)
    assert (c["from"], c["to"]) == (600, 800)
    assert c["fall"]["fd_mean"] == pytest.approx(0.025) and c["fall"]["fd2_mean"] == pytest.approx(0.075)
    assert not c["converged"]  # FD2 still falls 7.5 %
    rows[-1]["fd2_mean"] = 1.95
    assert convergence(rows)["converged"]


def test_runs_sizes_windows_and_batches():
    cfg = DistillConfig()
    runs = cfg.runs()
    assert list(runs) == ["teacher", "ct", "ct-short", "cd", "cd-short", "cd-small"]
    assert (runs["cd"].iterations, runs["cd"].batch_size) == (12800, 64)
    assert (runs["cd-short"].iterations, runs["cd-short"].batch_size) == (1600, 64)
    assert (runs["cd-small"].iterations, runs["cd-small"].batch_size) == (1600, 16)
    assert runs["cd"].demo.lcsc_points == (400, 800, 1600, 3200, 6400, 12800)  # N/32 … N
    assert runs["cd-short"].demo.lcsc_points == (400, 800, 1600)
    assert runs["teacher"].demo.lcsc_points == (51200,) and runs["teacher"].demo.dm_nfe == 9
    for spec in runs.values():
        assert len(spec.demo.points) >= 12 and set(spec.demo.lcsc_points) <= set(spec.demo.points)
        assert spec.demo.held_out_noise == "report" and spec.demo.seed == 10
    assert cfg.runs()["cd"].demo.window // cfg.runs()["cd"].demo.interval == 100  # K = 100
    assert DistillConfig(seed=1).runs()["cd"].demo.held_out_noise == "decision"  # a sizing probe: check noise
    with pytest.raises(ConfigError, match="seed 7 is neither a report seed"):
        DistillConfig(seed=7)


def test_a_folder_of_another_configuration_is_refused_naming_the_keys(tmp_path):
    cfg = DistillConfig.quick(seed=10)
    check_out_folder(cfg, tmp_path / "run")
    check_out_folder(cfg, tmp_path / "run")  # the same configuration resumes
    with pytest.raises(ConfigError, match=r"differs in batch_size, seed"):
        check_out_folder(DistillConfig.quick(seed=11, batch_size=32), tmp_path / "run")
    assert json.loads((tmp_path / "run" / "distill_config.json").read_text())["seed"] == 10  # nothing overwritten
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no distill_config.json"):
        check_out_folder(cfg, tmp_path / "other")


def test_lane_schedule_is_greedy_longest_first():
    """Two lanes, the runs in the order given (longest first): cd 0–8 | ct 0–6, ct-short 6–8 | cd-short 8–9 on the
    first free lane (lane 0 at 8), cd-small 8–9 on lane 1: 9 s; one lane: the sum."""
    from lcsc.distill.estimate import lane_schedule

    d = {"cd": 8.0, "ct": 6.0, "ct-short": 2.0, "cd-short": 1.0, "cd-small": 1.0}
    assert lane_schedule(d, 2) == pytest.approx(9.0)
    assert lane_schedule(d, 1) == pytest.approx(18.0)
    assert lane_schedule({"a": 5.0, "b": 4.0, "c": 3.0}, 2) == pytest.approx(7.0)


def test_a_resumed_run_reuses_the_estimate_it_timed_when_it_started(tmp_path, monkeypatch):
    from lcsc.distill import run as distillation

    calls = []
    monkeypatch.setattr(distillation, "estimate_stages", lambda *a: calls.append(a) or {"training": 12.5})
    cfg = DistillConfig.quick(seed=10)
    assert distillation._estimate(cfg, None, None, tmp_path) == {"training": 12.5}
    assert json.loads((tmp_path / "estimate.json").read_text()) == {"training": 12.5}
    (tmp_path / "estimate.json").write_text(json.dumps({"training": 99.0}))  # what the first start measured
    assert distillation._estimate(cfg, None, None, tmp_path) == {"training": 99.0} and len(calls) == 1
    (tmp_path / "estimate.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="estimate.json: expected a JSON object"):
        distillation._estimate(cfg, None, None, tmp_path)
