"""Fréchet distance: zero on itself, monotone in added noise, the fast eigenvalue route equals scipy's sqrtm,
statistics round-trip through .npz and damaged files are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from lcsc.errors import ConfigError, DataError
from lcsc.metrics.frechet import FrechetReference, GaussianStats, frechet_distance, frechet_distance_sqrtm

# scipy's sqrtm warns on the singular products that the rank-deficient cases build on purpose
pytestmark = pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")


@pytest.fixture(scope="module")
def digits_pixels() -> np.ndarray:
    return load_digits().data.astype(np.float64)  # (1797, 64): pixels as 64-d "features"


def rel_close(fast: float, ref: float, tol: float = 1e-4) -> bool:
    return abs(fast - ref) <= tol * abs(ref)


def random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def stats_from_cov(mu: np.ndarray, sigma: np.ndarray) -> GaussianStats:
    return GaussianStats(mu=mu, sigma=0.5 * (sigma + sigma.T), n=1000)


def test_fd_of_a_set_with_itself_is_zero(digits_pixels):
    s = GaussianStats.from_features(digits_pixels)
    trace = float(np.trace(s.sigma))
    assert abs(frechet_distance(s, s)) < 1e-6 * trace
    assert abs(FrechetReference(s).distance_features(digits_pixels)) < 1e-6 * trace
    assert abs(frechet_distance_sqrtm(s, s)) < 1e-6 * trace


def test_fd_grows_with_noise(digits_pixels):
    ref = FrechetReference(GaussianStats.from_features(digits_pixels))
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(digits_pixels.shape)
    fds = [ref.distance_features(digits_pixels + std * noise) for std in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert all(b > a for a, b in zip(fds, fds[1:])), fds
    assert fds[-1] > 10.0


def test_fast_equals_sqrtm_well_conditioned_wishart():
    rng = np.random.default_rng(1)
    d = 48
    for _ in range(3):
        xa, xb = rng.standard_normal((200, d)), rng.standard_normal((300, d)) @ rng.standard_normal((d, d))
        a, b = GaussianStats.from_features(xa), GaussianStats.from_features(xb + 0.5)
        ref = frechet_distance_sqrtm(a, b)
        assert rel_close(frechet_distance(a, b), ref), (frechet_distance(a, b), ref)
        assert rel_close(frechet_distance(b, a), ref)


def test_fast_equals_sqrtm_rank_deficient():
    rng = np.random.default_rng(2)
    d = 64
    mix = rng.standard_normal((d, d))
    a = GaussianStats.from_features(rng.standard_normal((20, d)) @ mix)  # rank 19
    b = GaussianStats.from_features(rng.standard_normal((20, d)) @ mix + 0.1)
    assert np.linalg.matrix_rank(a.sigma) == 19
    ref = frechet_distance_sqrtm(a, b)
    assert rel_close(frechet_distance(a, b), ref), (frechet_distance(a, b), ref)
    assert rel_close(frechet_distance(b, a), ref)


def test_fast_equals_sqrtm_eigenvalues_spanning_ten_decades():
    rng = np.random.default_rng(3)
    d = 64
    evals = np.logspace(-8, 2, d)
    qa, qb = random_orthogonal(d, rng), random_orthogonal(d, rng)
    sa, sb = (qa * evals) @ qa.T, (qb * rng.permutation(evals)) @ qb.T
    a = stats_from_cov(np.zeros(d), sa)
    b = stats_from_cov(rng.standard_normal(d) * 0.01, sb)
    ref = frechet_distance_sqrtm(a, b)
    assert rel_close(frechet_distance(a, b), ref), (frechet_distance(a, b), ref)
    # nearly identical ill-conditioned covariances: FD is small next to the traces
    c = stats_from_cov(np.zeros(d), sa + 1e-3 * np.eye(d))
    assert rel_close(frechet_distance(a, c), frechet_distance_sqrtm(a, c), 1e-3)
    assert abs(frechet_distance(a, c) - frechet_distance_sqrtm(a, c)) < 1e-8 * np.trace(sa)


def test_fast_equals_sqrtm_on_realistic_d256():
    rng = np.random.default_rng(4)
    d = 256
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    real = np.maximum(rng.standard_normal((1500, d)) @ mix, 0.0)  # ReLU-like, correlated "pool features"
    fake = np.maximum(rng.standard_normal((1000, d)) @ (mix + 0.05 * rng.standard_normal((d, d)) / np.sqrt(d)), 0)
    a, b = GaussianStats.from_features(real), GaussianStats.from_features(fake)
    ref = frechet_distance_sqrtm(a, b)
    assert ref > 0
    assert rel_close(FrechetReference(a).distance(b), ref), (FrechetReference(a).distance(b), ref)


def test_from_features_accepts_torch_and_float32():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    s_t = GaussianStats.from_features(x)
    s_np = GaussianStats.from_features(x.numpy().astype(np.float32))
    assert s_t.mu.dtype == np.float64 and s_t.sigma.shape == (8, 8) and s_t.n == 50
    np.testing.assert_allclose(s_t.sigma, s_np.sigma, rtol=1e-12)
    np.testing.assert_allclose(s_t.sigma, np.cov(x.double().numpy(), rowvar=False), rtol=1e-12)


def test_bad_features_and_dimension_mismatch():
    with pytest.raises(ConfigError, match="at least 2 .*got 1"):
        GaussianStats.from_features(np.ones((1, 4)))
    bad = np.zeros((10, 4))
    bad[3, 2] = np.nan
    with pytest.raises(ConfigError, match="NaN/Inf"):
        GaussianStats.from_features(bad)
    with pytest.raises(ConfigError, match="2-D"):
        GaussianStats.from_features(np.zeros(5))
    a = GaussianStats.from_features(np.random.default_rng(0).standard_normal((10, 3)))
    b = GaussianStats.from_features(np.random.default_rng(0).standard_normal((10, 4)))
    with pytest.raises(ConfigError, match="3 vs 4"):
        frechet_distance(a, b)
    with pytest.raises(ConfigError, match="3 vs 4"):
        frechet_distance_sqrtm(a, b)


def test_save_load_round_trip(tmp_path):
    s = GaussianStats.from_features(np.random.default_rng(5).standard_normal((30, 6)))
    path = s.save(tmp_path / "sub" / "ref.npz")
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    loaded = GaussianStats.load(path)
    np.testing.assert_array_equal(loaded.mu, s.mu)
    np.testing.assert_array_equal(loaded.sigma, s.sigma)
    assert loaded.n == 30
    assert frechet_distance(s, loaded) == pytest.approx(0.0, abs=1e-10)


def test_load_errors_name_the_path(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match="corrupt.npz"):
        GaussianStats.load(corrupt)
    missing_key = tmp_path / "nokey.npz"
    np.savez(missing_key, mu=np.zeros(3))
    with pytest.raises(DataError, match="nokey.npz"):
        GaussianStats.load(missing_key)
    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, mu=np.zeros(3), sigma=np.eye(4), n=np.int64(5))
    with pytest.raises(DataError, match="shape.npz"):
        GaussianStats.load(wrong_shape)
    with pytest.raises(DataError, match="absent.npz"):
        GaussianStats.load(tmp_path / "absent.npz")


@pytest.mark.parametrize("n", [2, 7, 120])
def test_few_samples_route_equals_the_full_covariance_route(n):
    """N < D: the N×N Gram route gives the D×D route's FD, also against a rank-deficient reference (to 1e-6: the D×D
    route adds the square roots of the round-off left in its D − N zero eigenvalues); N ≥ D takes the D×D route."""
    rng = np.random.default_rng(n)
    d = 160
    ref_x = rng.normal(size=(400, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
    low_rank = rng.normal(size=(100, d)) @ rng.normal(size=(d, d))  # Σ_ref of rank 99 < D
    for ref in (GaussianStats.from_features(ref_x), GaussianStats.from_features(low_rank)):
        fast = FrechetReference(ref)
        x = rng.normal(loc=0.3, size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
        full = fast.distance(GaussianStats.from_features(x))
        assert fast.distance_features(x) == pytest.approx(full, rel=1e-6)
        assert fast.distance_features(torch.from_numpy(x).float()) == pytest.approx(
            fast.distance(GaussianStats.from_features(torch.from_numpy(x).float())), rel=1e-6)
    big = rng.normal(size=(d + 5, d))
    assert fast.distance_features(big) == fast.distance(GaussianStats.from_features(big))
    with pytest.raises(ConfigError, match="at least 2"):
        fast.distance_features(big[:1])
