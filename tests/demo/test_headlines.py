"""Headline arithmetic: crossings by linear interpolation, speed-ups and NFE matches claimed only in every space."""

from __future__ import annotations

import pytest

from lcsc.experiment.headlines import crossing, holds_everywhere, nfe_match, speedup


def _rows(fd, fd2=None, fd3=None):
    fd2, fd3 = fd2 or fd, fd3 or fd
    return [{"fd_mean": a, "fd2_mean": b, "fd3_mean": c} for a, b, c in zip(fd, fd2, fd3)]


def test_crossing_interpolates_between_the_bracketing_points():
    c = crossing([400, 800, 1200], [50.0, 40.0, 30.0], 35.0)
    assert c.x == pytest.approx(1000.0) and not c.at_start
    assert crossing([1, 2], [10.0, 8.0], 12.0).at_start  # already there at the first point
    assert crossing([1, 2], [10.0, 8.0], 5.0).x is None  # never
    assert crossing([1, 2, 3], [10.0, 4.0, 1.0], 4.0).x == pytest.approx(2.0)  # exactly at a point


def test_crossing_takes_the_first_reach_of_a_non_monotone_curve():
    assert crossing([1, 2, 3, 4], [10.0, 6.0, 9.0, 2.0], 7.0).x == pytest.approx(1.75)


def test_speedup_is_the_minimum_over_spaces_and_claimed_only_if_all_exceed_one():
    points = [400, 800, 1200, 1600]
    curve = _rows([60.0, 40.0, 30.0, 20.0], [6.0, 4.0, 3.0, 2.0], [6.0, 4.0, 3.0, 2.0])
    lcsc = {"fd_mean": 25.0, "fd2_mean": 3.5, "fd3_mean": 3.0}  # reached at 1400, 1000, 1200
    s = speedup(points, curve, lcsc, 800, search_iters=200)
    assert s["by_space"]["fd_mean"] == pytest.approx(1400 / 800)
    assert s["by_space"]["fd2_mean"] == pytest.approx(1000 / 800)
    assert s["speedup_iters"] == pytest.approx(1000 / 800) and s["claimed"]
    assert s["speedup_with_search"] == pytest.approx(1000 / 1000)
    worse = dict(lcsc, fd2_mean=4.5)  # FD2: EMA* at 800 (4.0) is already better than LCSC at 800
    s = speedup(points, curve, worse, 800, search_iters=0)
    assert s["by_space"]["fd2_mean"] < 1 and not s["claimed"]


def test_speedup_never_reached_is_a_lower_bound():
    s = speedup([400, 800], _rows([50.0, 40.0]), {"fd_mean": 1.0, "fd2_mean": 1.0, "fd3_mean": 1.0}, 400, 0)
    assert s["lower_bound"] and s["speedup_iters"] == pytest.approx(2.0) and s["crossings"]["fd_mean"]["never"]
    assert s["crossings"]["fd_mean"]["label"] == "> 800"


def test_nfe_match_and_its_claim():
    nfes = [4, 5, 6, 8, 10]
    curve = _rows([50.0, 40.0, 34.0, 28.0, 25.0])
    m = nfe_match(nfes, curve, {"fd_mean": 31.0, "fd2_mean": 31.0, "fd3_mean": 31.0}, 5)
    assert m["ema_star_nfe"] == pytest.approx(7.0) and m["claimed"] and m["lcsc_nfe"] == 5
    never = nfe_match(nfes, curve, {"fd_mean": 10.0, "fd2_mean": 10.0, "fd3_mean": 10.0}, 5)
    assert never["ema_star_nfe"] == "> 10" and never["claimed"]
    small = nfe_match(nfes, curve, {"fd_mean": 39.0, "fd2_mean": 39.0, "fd3_mean": 39.0}, 5)
    assert small["ema_star_nfe"] == pytest.approx(5.17, abs=0.01) and not small["claimed"]  # less than one NFE step
    mixed = nfe_match(nfes, curve, {"fd_mean": 31.0, "fd2_mean": 45.0, "fd3_mean": 31.0}, 5)
    assert not mixed["claimed"] and mixed["ema_star_nfe"] == pytest.approx(4.5)


def test_holds_everywhere():
    base = {"fd_mean": 2.0, "fd2_mean": 2.0, "fd3_mean": 2.0}
    assert holds_everywhere({"fd_mean": 1.0, "fd2_mean": 1.0, "fd3_mean": 1.9}, base)
    assert not holds_everywhere({"fd_mean": 1.0, "fd2_mean": 1.0, "fd3_mean": 2.1}, base)


def test_ema_star_choice_flags_the_edges_of_each_family():
    from lcsc.experiment.config import DemoConfig
    from lcsc.experiment.stages import candidate_names, ema_star_choice

    cfg = DemoConfig()
    online, posthoc = candidate_names(cfg)
    assert len(online) == len(cfg.half_lives) and len(posthoc) == len(cfg.sigma_rels) >= 12
    scores = {n: 2.0 for n in online + posthoc}
    assert ema_star_choice(cfg, scores | {posthoc[3]: 1.0}) == (posthoc[3], True)
    assert ema_star_choice(cfg, scores | {online[0]: 1.0}) == (online[0], False)  # the shortest half-life
    assert ema_star_choice(cfg, scores | {posthoc[-1]: 1.0}) == (posthoc[-1], False)  # the widest σ_rel


def test_pair_training_estimate_is_the_slower_model_on_one_thread():
    from lcsc.demo.estimate import _pair_seconds

    fast, slow = {"step1": 0.02, "step": 0.015}, {"step1": 0.04, "step": 0.025}
    # no widening once the fast one is done (that made the weights depend on timing): 100 × 0.04 s
    assert _pair_seconds(100, slow, fast) == pytest.approx(100 * 0.04)


def test_held_out_rows_are_scored_once_per_weights(monkeypatch):
    """An anchor the guard exported (or a best initial individual that is EMA*) reuses EMA*'s row; other weights
    are scored; a full row serves a later FD-only request, not the other way round."""
    from types import SimpleNamespace

    import torch

    from lcsc.demo import run as demo_run

    calls = []
    monkeypatch.setattr(demo_run, "held_out_row", lambda run, cfg, scorer, state, nfe, full:
                        (calls.append((float(state["w"][1]), nfe, full)), SimpleNamespace(v=len(calls)))[1])
    score = demo_run._RowScorer(None, None, None, SimpleNamespace(update=lambda n: None))
    a, b = {"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([1.0, 2.5])}
    first = score("hl-16", 800, lambda: a, 5, True)
    assert score("lcsc", 800, lambda: {"w": a["w"].clone()}, 5, False) is first  # same weights: EMA*'s row
    assert score("other", 800, lambda: b, 5, False) is not first
    score("x", 800, lambda: b, 5, True)  # an FD-only row does not serve a full one
    score("y", 800, lambda: a, 4, True)  # another NFE is another row
    assert calls == [(2.0, 5, True), (2.5, 5, False), (2.5, 5, True), (2.0, 4, True)]
