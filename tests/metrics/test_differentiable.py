"""Differentiable FD/KID: the same values as the numpy metrics, gradients that pass finite differences, a smooth max
within its bounds, features with autograd (digits CNN, Inception with straight-through 8-bit rounding)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lcsc.errors import ConfigError
from lcsc.metrics import (
    combine_terms,
    differentiable_features,
    frechet_distance_torch,
    kernel_inception_distance,
    kid_torch,
    smooth_max,
)
from lcsc.metrics.differentiable import _reference_tensors
from lcsc.metrics.features import ClassifierFeatures
from lcsc.metrics.frechet import FrechetReference, GaussianStats
from lcsc.metrics.inception import INCEPTION_INPUT_RANGE, InceptionFeatures


def _reference(d: int, seed: int = 0) -> FrechetReference:
    """A well-conditioned random reference: eigenvalues of Σ_ref in [0.5, 2], mean of size ~1."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    sigma = (q * rng.uniform(0.5, 2.0, size=d)) @ q.T
    return FrechetReference(GaussianStats(mu=rng.normal(size=d), sigma=0.5 * (sigma + sigma.T), n=1000))


def _features(n: int, d: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * 1.3 + 0.4


@pytest.mark.parametrize(("n", "d"), [(40, 6), (6, 6), (5, 12), (2, 9), (30, 64)])
def test_fd_equals_the_numpy_route(n, d):
    ref, x = _reference(d), _features(n, d)
    expected = ref.distance_features(x.numpy())  # N < D: numpy's Gram route; N >= D: its D×D route
    got = frechet_distance_torch(x, ref)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert expected > 1 and abs(got.item() - expected) <= 1e-8 * expected, (got.item(), expected)
    assert abs(frechet_distance_torch(x.float(), ref).item() - ref.distance_features(x.float().numpy())) < 1e-8 * expected


@pytest.mark.parametrize(("n", "d"), [(50, 7), (5, 9)])
def test_fd_is_zero_for_the_reference_statistics(n, d):
    x = _features(n, d, seed=3)
    ref = FrechetReference(GaussianStats.from_features(x.numpy()))  # singular when N <= D
    assert abs(frechet_distance_torch(x, ref).item()) < 1e-8 * ref.trace
    assert frechet_distance_torch(x + 0.1, ref).item() == pytest.approx(d * 0.01, rel=1e-6)  # a shift adds ‖δ‖²


@pytest.mark.parametrize(("n", "d"), [(12, 5), (4, 6)])
def test_fd_gradient_passes_finite_differences(n, d):
    ref = _reference(d, seed=2)
    x = _features(n, d, seed=4).requires_grad_()
    assert torch.autograd.gradcheck(lambda f: frechet_distance_torch(f, ref), (x,))
    frechet_distance_torch(x, ref).backward()
    assert x.grad.abs().max() > 0.01


def test_fd_of_collapsed_features_is_finite_and_reference_tensors_are_cached():
    ref = _reference(4)
    x = torch.ones(6, 4, dtype=torch.float64, requires_grad=True)  # Σ = 0: every eigenvalue at the floor
    fd = frechet_distance_torch(x, ref)
    fd.backward()
    assert fd.item() == pytest.approx(ref.distance_features(x.detach().numpy()), rel=1e-12)
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0  # the mean term still pulls
    first, again = _reference_tensors(ref, x.device), _reference_tensors(ref, x.device)
    assert first[0] is again[0] and first[1] is again[1]  # converted once per reference and device


def test_fd_refuses_bad_features():
    ref = _reference(4)
    with pytest.raises(ConfigError, match="dimension 5, the reference 4"):
        frechet_distance_torch(_features(6, 5), ref)
    with pytest.raises(ConfigError, match="N >= 2"):
        frechet_distance_torch(_features(1, 4), ref)
    with pytest.raises(ConfigError, match="NaN/Inf"):
        frechet_distance_torch(torch.full((3, 4), float("nan")), ref)


@pytest.mark.parametrize(("n_ref", "n", "subsets", "size", "seed"), [(30, 25, 5, 10, 3), (12, 9, 3, 50, 0)])
def test_kid_equals_kernel_inception_distance(n_ref, n, subsets, size, seed):
    reference = np.random.default_rng(5).normal(size=(n_ref, 4)) * 2.0
    x = _features(n, 4, seed=6)
    expected, _ = kernel_inception_distance(reference, x.numpy(), subsets, size, seed)
    got = kid_torch(x, reference, subsets, size, seed)
    assert got.dtype == torch.float64 and abs(got.item() - expected) <= 1e-9, (got.item(), expected)
    assert abs(kid_torch(x, torch.from_numpy(reference), subsets, size, seed).item() - expected) <= 1e-9
    assert abs(kid_torch(x, reference, subsets, size, seed + 1).item() - expected) > 1e-6  # other subsets


def test_kid_gradient_passes_finite_differences():
    reference = np.random.default_rng(7).normal(size=(8, 3))
    x = _features(7, 3, seed=8).requires_grad_()
    assert torch.autograd.gradcheck(lambda f: kid_torch(f, reference, 3, 5, seed=1), (x,))
    with pytest.raises(ConfigError, match="different dimensions"):
        kid_torch(x, np.zeros((8, 4)), 3, 5)
    with pytest.raises(ConfigError, match="subset_size must be >= 2"):
        kid_torch(x, reference, 3, 1)


def test_smooth_max_bounds_and_gradient():
    v = torch.tensor([0.3, 1.0, 0.95, -2.0], dtype=torch.float64, requires_grad=True)
    tau, n = 0.05, 4
    s = smooth_max(v, tau)
    assert 1.0 - tau * math.log(n) <= s.item() <= 1.0
    assert s.item() > 0.9  # near the max (the mean is 0.06)
    s.backward()
    assert torch.allclose(v.grad, torch.softmax(v.detach() / tau, 0)) and v.grad.sum().item() == pytest.approx(1.0)
    assert smooth_max(torch.full((5,), 2.5), 0.1).item() == pytest.approx(2.5)  # equal entries: the value itself
    big = smooth_max(torch.tensor([1e4, 1e4 - 1.0], dtype=torch.float64), 0.05)  # exp(2e5) would overflow
    assert big.item() == pytest.approx(1e4 + 0.05 * math.log((1 + math.exp(-20)) / 2), abs=1e-9)
    with pytest.raises(ConfigError, match="temperature"):
        smooth_max(v, 0.0)


def test_combine_terms_mean_max_single_and_refusals():
    t = torch.tensor([2.0, 6.0, 1.5], dtype=torch.float64, requires_grad=True)
    norms = [1.0, 3.0, 0.5]

    def combine(x, reduce):
        return combine_terms([x[0], x[1], x[2]], norms, reduce, temperature=0.1)

    assert combine(t, "mean").item() == pytest.approx((2.0 + 2.0 + 3.0) / 3)
    assert combine(t, "max").item() == pytest.approx(smooth_max(torch.tensor([2.0, 2.0, 3.0]), 0.1).item())
    assert combine_terms([t[1]], [3.0], "single").item() == pytest.approx(2.0)
    for reduce in ("mean", "max"):
        assert torch.autograd.gradcheck(lambda x, r=reduce: combine(x, r), (t,))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="normaliser 1 must be a positive finite number"):
            combine_terms([t[0], t[1]], [1.0, bad], "mean")
    with pytest.raises(ConfigError, match="reduce must be one of"):
        combine_terms([t[0]], [1.0], "median")
    with pytest.raises(ConfigError, match="one normaliser per term"):
        combine_terms([t[0], t[1]], [1.0], "max")


def test_differentiable_features_equal_the_no_grad_features_on_a_digits_cnn(one_thread):
    # the "digits" feature space is ClassifierFeatures(DigitsCNN, "digits", (1, 8, 8)); untrained here (training it
    # costs ~20 s on one core), the code path is the same
    from lcsc.metrics.digits_features import DigitsCNN

    torch.manual_seed(0)
    extractor = ClassifierFeatures(DigitsCNN(), "digits", (1, 8, 8), batch_size=4)  # 10 images: 3 batches
    g = torch.Generator().manual_seed(9)
    images = (torch.rand(10, 1, 8, 8, generator=g, dtype=torch.float64) * 2.4 - 1.2).requires_grad_()
    feats = differentiable_features(extractor, images)
    expected = extractor(images.detach())
    assert feats.dtype == torch.float32 and feats.shape == (10, 128) and feats.requires_grad
    assert torch.allclose(feats.detach(), expected, atol=1e-5, rtol=1e-5) and expected.abs().max() > 0.01
    feats.sum().backward()
    inside = images.detach().abs() < 1
    assert images.grad[inside].abs().min() >= 0 and images.grad[inside].abs().max() > 1e-4
    assert (images.grad[~inside] == 0).all()  # clamped like the no-grad path
    with pytest.raises(ConfigError, match="digits features take 1×8×8 images"):
        differentiable_features(extractor, torch.zeros(2, 3, 8, 8))


def _bare_inception() -> InceptionFeatures:
    return InceptionFeatures.__new__(InceptionFeatures)  # preprocess only: no network load


def test_straight_through_preprocess_has_the_same_values_and_a_gradient():
    levels = (torch.arange(-2, 258, dtype=torch.float32) + 0.5) / 255 * 2 - 1  # half-levels: rounding ties
    dense = torch.linspace(-1.05, 1.05, 299 * 299 - levels.numel())
    x = torch.cat([levels, dense]).reshape(1, 1, 299, 299).requires_grad_()  # 299×299: no resize
    f = _bare_inception()
    plain, st = f.preprocess(x), f.preprocess(x, straight_through=True)
    assert torch.equal(plain, st) and plain.shape == (1, 3, 299, 299)
    (g_plain,) = torch.autograd.grad(plain.sum(), x)
    (g_st,) = torch.autograd.grad(st.sum(), x)
    assert (g_plain == 0).all()  # the problem: round() has zero gradient
    lo, hi = INCEPTION_INPUT_RANGE
    inside = (x.detach().abs() < 1) & (st.detach()[:, :1] < hi)  # neither clamp active
    assert torch.allclose(g_st[inside], torch.tensor(3 * (hi - lo) / 2))  # 3 channels × d(TF range)/d(x)
    small = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1  # resized to 299
    assert torch.equal(f.preprocess(small), f.preprocess(small, straight_through=True))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inception_features_have_a_gradient_in_the_images(one_thread):
    from lcsc.metrics.inception import inception_weights_path

    try:
        inception_weights_path()
    except ConfigError as exc:
        pytest.skip(f"optional extra 'inception' not installed: {exc}")
    f = InceptionFeatures(batch_size=2)
    images = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
    feats = differentiable_features(f, images)
    assert torch.allclose(feats.detach(), f(images.detach()), atol=1e-5)
    feats.sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().max() > 1e-3
    assert not any(p.requires_grad for p in f.net.parameters())  # gradients go to the images only
