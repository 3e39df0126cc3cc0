"""Σa = 1 exactly: every row ``exact_sum_to_one`` returns has numpy sum ``row.sum() == 1.0`` (the sum of a (G, K)
array along its last axis, as the journal's float64 coefficients are summed), for many random vectors of several
dimensions and scales, through the structured spaces' a = B·w, the CMA-ES chart and the projection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lcsc.search.basis import CoefficientSpace
from lcsc.search.hyperplane import Hyperplane, exact_sum_to_one

EPS = np.finfo(np.float64).eps


def _random_rows(rng: np.random.Generator, n: int, D: int, scale: float) -> np.ndarray:
    """Rows summing to 1 up to rounding: normal draws (heavy-tailed after the division) times ``scale``."""
    w = rng.normal(size=(n, D)) * scale + 1.0 / D
    return w / w.sum(axis=1, keepdims=True)


def _assert_exact(a: np.ndarray) -> None:
    """Σ = 1 by the array's own row sums, by each row alone, and after a JSON round trip (the journal)."""
    sums = a.sum(axis=-1)
    off = sorted(set(sums[sums != 1.0].tolist()))
    assert not off, f"{(sums != 1.0).sum()} of {len(sums)} rows do not sum to 1.0, e.g. {off[:3]}"
    assert all(row.sum() == 1.0 for row in a)
    again = np.asarray(json.loads(json.dumps(a.tolist())), dtype=np.float64)
    assert (again.sum(axis=-1) == 1.0).all()


@pytest.mark.parametrize("D", [2, 3, 4, 7, 8, 9, 16, 17, 40, 129, 300])
def test_exact_over_random_vectors(D: int) -> None:
    """2 000 vectors per dimension and three scales (22 000 in all); the change is a few ulps of Σ|w|."""
    rng = np.random.default_rng(D)
    for scale in (0.01, 1.0, 100.0):
        before = _random_rows(rng, 700 if scale != 1.0 else 600, D, scale)
        after = exact_sum_to_one(before.copy())
        _assert_exact(after)
        bound = 64 * EPS * np.abs(before).sum(axis=1)
        assert (np.abs(after - before).max(axis=1) <= bound).all()


@pytest.mark.parametrize("spec,K,anchors", [("ema-basis:4", 10, 0), ("ema-basis:4", 40, 0), ("ema-basis:8", 200, 0),
                                            ("spline:6", 40, 0), ("ema-basis:4", 12, 2)])
def test_exact_through_the_structured_spaces(spec: str, K: int, anchors: int) -> None:
    """a = B·w (``to_coefficients``) for 2 500 random w per space, and the projection of random a back into w."""
    space = CoefficientSpace(spec, K=K, G=2500, interval=5, anchors=anchors)
    rng = np.random.default_rng(K)
    w = exact_sum_to_one(_random_rows(rng, space.G, space.D, 1.0))
    a = space.to_coefficients(w)
    _assert_exact(a)
    assert np.abs(a - w @ space.basis.T).max() < 1e-12 * max(1.0, np.abs(w).max())
    projected, _ = space.project(_random_rows(rng, space.G, K, 1.0))
    _assert_exact(projected)


def test_exact_on_the_cma_chart() -> None:
    rng = np.random.default_rng(7)
    for D in (2, 4, 9, 33):
        chart = Hyperplane(exact_sum_to_one(_random_rows(rng, 3, D, 1.0)))
        for sigma in (1e-3, 1.0, 30.0):
            _assert_exact(np.concatenate([chart.to_w(rng.normal(size=chart.dim) * sigma) for _ in range(300)]))


def test_a_row_whose_last_entry_alone_cannot_reach_one() -> None:
    """p + x with p = −(2 − 2⁻⁵²): the floats x near 3 are 2⁻⁵¹ apart, so p + x is 1 ± 2⁻⁵², never 1; another
    entry must move by one ulp."""
    p = -(2.0 - 2.0**-52)
    w = exact_sum_to_one(np.array([[p, 3.0], [0.5, 0.5]]))
    _assert_exact(w)
    assert w[1].tolist() == [0.5, 0.5]  # already exact: untouched
    assert np.abs(w[0] - [p, 3.0]).max() <= 2.0**-51


def _last_entry_only(w: np.ndarray) -> np.ndarray:
    """The previous rule (four corrections of the last entry), which journals written before were made with."""
    for g in range(w.shape[0]):
        for _ in range(4):
            err = w[g].sum() - 1.0
            if err == 0.0:
                break
            w[g, -1] -= err
    return w


def test_rows_the_previous_rule_made_exact_keep_their_bits() -> None:
    """Old journals replay: where correcting the last entry sufficed, the result is bit for bit the same; exact rows
    are left alone."""
    rng = np.random.default_rng(3)
    before = _random_rows(rng, 5000, 6, 3.0)
    old, new = _last_entry_only(before.copy()), exact_sum_to_one(before.copy())
    was_exact = old.sum(axis=-1) == 1.0
    assert 0 < (~was_exact).sum() < 0.5 * len(before)  # the previous rule missed some: this test sees both kinds
    assert np.array_equal(new[was_exact], old[was_exact])
    assert np.array_equal(exact_sum_to_one(new.copy()), new)
