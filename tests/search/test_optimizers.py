"""Every optimiser × coefficient space: Σa = 1 exactly, seeded journals, resume = uninterrupted, racing, bad input."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.errors import ConfigError
from lcsc.merge import StackMerger
from lcsc.search import Journal, SearchConfig, run_search
from lcsc.search.basis import CoefficientSpace, parse_space
from lcsc.search.journal import TIMING_FIELDS
from tests.search.trajectory import regression_data, regression_student

COMBOS = [(opt, space) for opt in ("alg1", "cmaes", "sep-cmaes") for space in ("full", "ema-basis:5", "spline:6")]


class PrefixLoss:
    """Validation MSE on the first ``num_samples`` rows of a fixed split (racing scores a prefix of the same rows)."""

    direction = "minimize"

    def __init__(self, n: int = 2000, seed: int = 2) -> None:
        self.net = regression_student()
        self.x, self.y = regression_data(n, seed)
        self.num_samples = n
        self.calls: list[int] = []

    def with_samples(self, n: int) -> PrefixLoss:
        other = copy.copy(self)
        other.num_samples = n
        return other

    @torch.no_grad()
    def score(self, state_dict) -> float:
        self.calls.append(self.num_samples)
        self.net.load_state_dict(state_dict)
        n = self.num_samples
        return float(torch.nn.functional.mse_loss(self.net(self.x[:n]), self.y[:n]))


@pytest.fixture
def merger(regression_ckpts: Path) -> StackMerger:
    return StackMerger(CheckpointStack.open(regression_ckpts, progress=False))


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def _journal(path: Path) -> Journal:
    return Journal.load(path / "journal.jsonl")


@pytest.mark.parametrize("optimizer,space", COMBOS)
def test_sum_to_one_exactly_seeded_and_resumable(merger, tmp_path: Path, optimizer: str, space: str) -> None:
    obj = PrefixLoss(600)
    cfg = dict(optimizer=optimizer, space=space, seed=4)
    full = run_search(merger, obj, SearchConfig(evals=40, **cfg), tmp_path / "a", progress=False)
    run_search(merger, obj, SearchConfig(evals=40, **cfg), tmp_path / "b", progress=False)
    run_search(merger, obj, SearchConfig(evals=17, **cfg), tmp_path / "c", progress=False)  # stops mid-generation
    resumed = run_search(merger, obj, SearchConfig(evals=40, **cfg), tmp_path / "c", resume=True, progress=False)
    a, b, c = (_journal(tmp_path / n) for n in "abc")
    assert _strip(a.records) == _strip(b.records) == _strip(c.records)
    assert np.array_equal(full.best, resumed.best) and full.best_score == resumed.best_score
    coefficient_space = CoefficientSpace(space, merger.K, merger.G, 10)
    for r in a.records:
        coeffs = np.asarray(r["coefficients"], dtype=np.float64)
        if (optimizer, space) == ("alg1", "full"):  # the paper's normalisation, kept bit-compatible with old journals
            assert np.abs(coeffs.sum(axis=-1) - 1).max() < 1e-12
        else:  # the affine chart / basis: Σa = 1 in floating point, no tolerance
            assert coeffs.sum(axis=-1).tolist() == [1.0] * merger.G, r
        if space != "full":  # the journal's w maps to exactly the journal's K-vector
            w = np.asarray(r["w"], dtype=np.float64)
            assert np.array_equal(coefficient_space.to_coefficients(w), coeffs.reshape(merger.G, merger.K))
            assert np.abs(w @ coefficient_space.basis.T - coeffs).max() < 1e-14
    run_search(merger, obj, SearchConfig(evals=40, **{**cfg, "seed": 5}), tmp_path / "d", progress=False)
    assert _strip(_journal(tmp_path / "d").records) != _strip(a.records)
    assert full.best_score <= min(full.init_scores.values())


@pytest.mark.parametrize("optimizer", ["alg1", "sep-cmaes"])
def test_racing_selects_only_full_count_scores(merger, tmp_path: Path, optimizer: str) -> None:
    obj = PrefixLoss(2000)
    cfg = SearchConfig(evals=46, optimizer=optimizer, racing=True, race_fraction=0.25, race_keep=0.25, seed=1)
    result = run_search(merger, obj, cfg, tmp_path, progress=False)
    records = _journal(tmp_path).records
    full = {r["candidate"]: r for r in records if r["stage"] == "full"}
    race = {r["candidate"]: r for r in records if r["stage"] == "race"}
    assert result.best_index in full and result.best_score == full[result.best_index]["score"]
    assert result.best_score == min(r["score"] for r in full.values())
    assert all(r["samples"] == 500 for r in race.values()) and all(r["samples"] == 2000 for r in full.values())
    by_generation: dict[int, list[int]] = {}
    for r in race.values():
        by_generation.setdefault(r["generation"], []).append(r["candidate"])
    for gen, cands in by_generation.items():  # the best quarter of each raced generation goes on, by race score
        promoted = [c for c in cands if c in full]
        assert len(promoted) == math.ceil(0.25 * len(cands)), gen
        worst_promoted = max(race[c]["score"] for c in promoted)
        assert all(race[c]["score"] >= worst_promoted for c in cands if c not in full)
    assert result.samples == sum(r["samples"] for r in records if r["status"] != "cached")
    # common random numbers: the racing score is the same rows' prefix, so it is a real, different number
    assert all(race[c]["score"] != full[c]["score"] for c in full if c in race)


@pytest.mark.parametrize("optimizer,space", [("cmaes", "ema-basis:4"), ("alg1", "full"), ("sep-cmaes", "spline:5")])
def test_racing_cut_anywhere_then_resume_matches_uninterrupted(merger, tmp_path: Path, optimizer, space) -> None:
    """A journal cut after any line (what SIGKILL leaves) resumes to the uninterrupted run's journal."""
    cfg = SearchConfig(evals=30, optimizer=optimizer, space=space, racing=True, seed=2)
    run_search(merger, PrefixLoss(800), cfg, tmp_path / "a", progress=False)
    lines = (tmp_path / "a" / "journal.jsonl").read_text().splitlines(keepends=True)
    expected = _strip(_journal(tmp_path / "a").records)
    for cut in (3, 9, 14, len(lines) - 2):  # initial population, mid-race, mid-full stage, last generation
        out = tmp_path / f"cut{cut}"
        out.mkdir()
        (out / "journal.jsonl").write_text("".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2])
        result = run_search(merger, PrefixLoss(800), cfg, out, resume=True, progress=False)
        assert _strip(_journal(out).records) == expected, cut
        assert result.best_index == min((r for r in expected if r["stage"] == "full"),
                                        key=lambda r: (r["score"], r["candidate"]))["candidate"]


def test_max_samples_budget_counts_generated_samples(merger, tmp_path: Path) -> None:
    result = run_search(merger, PrefixLoss(500), SearchConfig(evals=100, max_samples=9000), tmp_path, progress=False)
    assert result.stopped == "max_samples" and 9000 <= result.samples < 9000 + 8 * 500


def test_structured_spaces_are_exact_k_vectors() -> None:
    for spec in ("ema-basis:2", "ema-basis:7", "spline:2", "spline:4", "spline:12"):
        space = CoefficientSpace(spec, K=40, G=3, interval=5)
        B = space.basis
        assert B.shape == (40, space.D) and np.allclose(B.sum(axis=0), 1.0, atol=1e-14)
        w = np.random.default_rng(0).normal(size=(3, space.D))
        w /= w.sum(axis=1, keepdims=True)
        a = space.to_coefficients(w)
        assert a.shape == (3, 40) and a.sum(axis=1).tolist() == [1.0, 1.0, 1.0]
        assert np.abs(a - w @ B.T).max() <= 64 * np.finfo(float).eps * np.abs(w).max()  # a few ulps
        back, err = space.project(a)  # a lies in the span: projection recovers w
        assert err < 1e-9 and np.allclose(back, w, atol=1e-8)
    ema = CoefficientSpace("ema-basis:3", K=10, interval=1).basis
    assert ema[:, -1].tolist() == [0.0] * 9 + [1.0]  # the last checkpoint is a column
    assert np.array_equal(CoefficientSpace("full", K=5).to_coefficients(np.eye(5)[2]), np.eye(5)[2][None])


@pytest.mark.parametrize("kwargs,match", [
    ({"optimizer": "adam"}, "optimizer 'adam'"),
    ({"space": "pca:3"}, "unknown space"),
    ({"space": "ema-basis:1"}, "must be >= 2"),
    ({"space": "spline:x"}, "integer D"),
    ({"space": "full:3"}, "takes no dimension"),
    ({"race_fraction": 1.0}, "race_fraction=1.0"),
    ({"race_keep": 0.0}, "race_keep=0.0"),
    ({"popsize": 1}, "popsize=1"),
])
def test_bad_settings_are_one_clear_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SearchConfig(**kwargs)


def test_d_larger_than_k_and_convex_cmaes_refused(merger, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"exceeds the {merger.K} checkpoints"):
        run_search(merger, PrefixLoss(100), SearchConfig(space=f"spline:{merger.K + 1}"), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="--convex works with --optimizer alg1 only"):
        run_search(merger, PrefixLoss(100), SearchConfig(optimizer="cmaes", convex=True), tmp_path / "c",
                   progress=False)
    assert parse_space(" EMA-Basis:4 ") == ("ema-basis", 4)


def test_resume_with_other_settings_is_refused_naming_them(merger, tmp_path: Path) -> None:
    run_search(merger, PrefixLoss(300), SearchConfig(evals=12, optimizer="sep-cmaes"), tmp_path, progress=False)
    for change, name in (({"optimizer": "cmaes"}, "optimizer"), ({"space": "spline:4"}, "space"),
                         ({"racing": True}, "racing")):
        cfg = SearchConfig(evals=20, **{"optimizer": "sep-cmaes", **change})
        with pytest.raises(ConfigError, match=f"different {name}"):
            run_search(merger, PrefixLoss(300), cfg, tmp_path, resume=True, progress=False)
    with pytest.raises(ConfigError, match="--racing needs an objective"):
        run_search(merger, lambda sd: 0.0, SearchConfig(racing=True), tmp_path / "x", progress=False)


class SeededPrefixLoss(PrefixLoss):
    """PrefixLoss whose rows depend on a noise seed; validation() draws other rows (a fresh noise draw)."""

    role = "search"

    def __init__(self, n: int = 400, seed: int = 2) -> None:
        super().__init__(n, seed)
        self.noise_seed = seed

    def validation(self) -> SeededPrefixLoss:
        other = SeededPrefixLoss(self.num_samples, self.noise_seed + 1000)
        other.role = "validation"
        return other


def test_revalidation_picks_the_best_of_the_shortlist_on_fresh_noise(merger, tmp_path: Path) -> None:
    obj = SeededPrefixLoss(300)
    cfg = SearchConfig(evals=30, optimizer="sep-cmaes", revalidate=4, seed=3)
    result = run_search(merger, obj, cfg, tmp_path / "a", progress=False)
    reval = result.revalidation
    records = _journal(tmp_path / "a").records
    full = sorted((r for r in records if r["stage"] == "full"), key=lambda r: (r["score"], r["candidate"]))
    top = list({r["hash"]: r for r in reversed(full)}.values())[::-1][:4]
    assert reval["candidates"] == [r["candidate"] for r in top]
    val = obj.validation()
    scores = [val.score(merger.merge_many(np.asarray(r["coefficients"])[None])[0]) for r in top]
    assert np.allclose(reval["scores"], scores)
    assert result.best_index == top[int(np.argmin(scores))]["candidate"]
    assert result.samples == sum(r["samples"] for r in records if r["status"] != "cached") + 4 * 300
    again = run_search(merger, obj, cfg, tmp_path / "a", resume=True, progress=False)  # reused, not re-scored
    assert again.best_index == result.best_index and len(_journal(tmp_path / "a").meta) == 1
    with pytest.raises(ConfigError, match="--revalidate needs an objective with validation"):
        run_search(merger, PrefixLoss(100), SearchConfig(revalidate=2), tmp_path / "b", progress=False)
    with pytest.raises(ConfigError, match="revalidate=-1"):
        SearchConfig(revalidate=-1)


@pytest.mark.parametrize("space", ["full", "ema-basis:5"])
def test_shrinkage_exports_part_of_the_way_from_the_best_initial_individual(merger, tmp_path: Path, space) -> None:
    obj = PrefixLoss(400)
    plain = run_search(merger, obj, SearchConfig(evals=30, space=space, seed=6), tmp_path / "a", progress=False)
    shrunk = run_search(merger, obj, SearchConfig(evals=30, space=space, seed=6, shrink=0.5), tmp_path / "b",
                        progress=False)
    a0, a1 = plain.best_initial.reshape(merger.G, -1), plain.best.reshape(merger.G, -1)
    assert np.allclose(shrunk.best, a0 + 0.5 * (a1 - a0), atol=1e-12)
    assert shrunk.best.sum(axis=-1).tolist() == [1.0] * merger.G
    assert shrunk.shrink["unshrunk"] == a1.tolist() and shrunk.shrink["from_index"] == plain.best_index
    assert shrunk.best_score == pytest.approx(obj.score(merger.merge_many(shrunk.best[None])[0]))
    assert shrunk.samples == plain.samples + 400
    again = run_search(merger, obj, SearchConfig(evals=30, space=space, seed=6, shrink=0.5), tmp_path / "b",
                       resume=True, progress=False)  # the journalled shrinkage is reused, nothing re-scored
    assert np.array_equal(again.best, shrunk.best) and len(_journal(tmp_path / "b").meta) == 1
    with pytest.raises(ConfigError, match="shrink=0"):
        SearchConfig(shrink=0)
