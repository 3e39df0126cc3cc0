"""Feature spaces: the digits nets (accuracy, independence, cache), user callables, reference-set caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcsc.data import ImageData, load_digits_data
from lcsc.errors import ConfigError
from lcsc.metrics import CallableFeatures, feature_space, reference_set
from lcsc.metrics.digits_features import digits_features


@pytest.fixture(scope="module")
def digits():
    return load_digits_data()


def test_digits_feature_spaces_are_accurate_and_different(digits):
    a, b = digits_features("digits"), digits_features("digits2")
    assert a.held_out_accuracy >= 0.95 and b.held_out_accuracy >= 0.95
    fa, fb = a(digits.images[:50]), b(digits.images[:50])
    assert fa.shape == (50, 128) and fb.shape == (50, 96)
    assert a.id != b.id and type(a.net) is not type(b.net)
    assert torch.equal(fa, a(digits.images[:50]))  # deterministic
    logits = a.logits(digits.images[:200])
    assert float((logits.argmax(1) == digits.labels[:200]).float().mean()) > 0.95


def test_digits3_is_a_third_independent_space(digits):
    from lcsc.metrics.digits_features import DIGITS_SPECS as SPECS

    a, b, c = (digits_features(s) for s in ("digits", "digits2", "digits3"))
    assert c.held_out_accuracy >= 0.97 and len({type(a.net), type(b.net), type(c.net)}) == 3
    assert len({SPECS[s].seed for s in ("digits", "digits2", "digits3")}) == 3
    assert SPECS["digits3"].augment and SPECS["digits3"].optimizer != SPECS["digits"].optimizer
    fc = c(digits.images[:300]).numpy()
    fa = a(digits.images[:300]).numpy()
    assert fc.shape == (300, 64)
    # not a linear copy of another space: regressing digits3 on digits leaves much of its variance unexplained
    centred = fc - fc.mean(0)
    coef, *_ = np.linalg.lstsq(np.c_[fa, np.ones(300)][:200], centred[:200], rcond=None)
    resid = centred[200:] - np.c_[fa, np.ones(300)][200:] @ coef
    assert (resid ** 2).sum() / (centred[200:] ** 2).sum() > 0.05


def test_digits4_is_a_report_only_space_of_another_architecture_family(digits):
    from torch import nn

    from lcsc import protocol
    from lcsc.metrics.digits_features import DIGITS_SPECS as SPECS

    d = digits_features("digits4")
    assert "digits4" in protocol.REPORT_SPACES and "digits4" not in protocol.DECISION_SPACES
    assert d.held_out_accuracy >= 0.95
    assert not any(isinstance(m, nn.Conv2d) for m in d.net.modules())  # not a CNN: attention over 2×2 patches
    assert any(isinstance(m, nn.MultiheadAttention) for m in d.net.modules())
    others = {SPECS[s] for s in protocol.DECISION_SPACES}
    assert SPECS["digits4"].split_seed not in {o.split_seed for o in others}  # its own split
    assert SPECS["digits4"].optimizer not in {o.optimizer for o in others}  # and its own recipe
    f4 = d(digits.images[:300]).numpy()
    assert f4.shape == (300, 48) and np.isfinite(f4).all()
    for s in protocol.DECISION_SPACES:  # not a linear copy of any decision space
        fo = digits_features(s)(digits.images[:300]).numpy()
        centred = f4 - f4.mean(0)
        coef, *_ = np.linalg.lstsq(np.c_[fo, np.ones(300)][:200], centred[:200], rcond=None)
        resid = centred[200:] - np.c_[fo, np.ones(300)][200:] @ coef
        assert (resid ** 2).sum() / (centred[200:] ** 2).sum() > 0.05, s


def test_digits_nets_are_cached_and_reused(tmp_path):
    first = digits_features("digits2", cache_dir=tmp_path)
    path = first.weights_path
    assert path.is_file() and path.parent == tmp_path
    mtime = path.stat().st_mtime_ns
    again = digits_features("digits2", cache_dir=tmp_path)
    assert again.id == first.id and path.stat().st_mtime_ns == mtime
    path.write_bytes(b"damaged")  # a damaged cache entry is retrained, not trusted
    fixed = digits_features("digits2", cache_dir=tmp_path)
    assert fixed.id == first.id


def test_processes_started_together_train_a_feature_net_once(tmp_path, monkeypatch):
    """Two callers on an empty cache (two pytest workers, two demos): one trains, the other waits and loads it."""
    import threading
    import time

    from lcsc.metrics import digits_features as module

    trained, real = [], module.train_digits_classifier

    def slow_train(spec, data):
        trained.append(spec)
        time.sleep(0.5)  # the second caller arrives while the first trains
        return real(spec, data)

    monkeypatch.setattr(module, "train_digits_classifier", slow_train)
    results = []
    threads = [threading.Thread(target=lambda: results.append(module.load_or_train("digits2", tmp_path)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trained) == 1 and len(results) == 2
    assert results[0][2] == results[1][2] and results[0][1] == results[1][1]


def test_wrong_image_shape_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"digits features take 1×8×8 images, got 3×32×32"):
        digits_features("digits")(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ConfigError, match="unknown feature space 'clip'"):
        feature_space("clip")


def test_user_callable_features_and_id():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
    f = CallableFeatures(net, "mine")
    assert f(torch.zeros(3, 1, 8, 8)).shape == (3, 5) and f.id.startswith("mine-")
    with pytest.raises(ConfigError, match="needs an id"):
        CallableFeatures(lambda x: x.flatten(1), "lam")
    g = CallableFeatures(lambda x: x.flatten(1), "lam", id="lam-v1")
    assert g(torch.ones(2, 1, 2, 2)).shape == (2, 4)


def test_reference_statistics_cached_and_invalidated(tmp_path, digits):
    feats = digits_features("digits2")
    first = reference_set(digits, feats, cache_dir=tmp_path)
    assert not first.cached and first.path.is_file() and first.features.shape == (1797, 96)
    again = reference_set(digits, feats, cache_dir=tmp_path)
    assert again.cached and np.array_equal(again.stats.mu, first.stats.mu)
    changed = ImageData(digits.images.flip(-1).contiguous(), digits.labels, 10, "digits-flipped")
    other_data = reference_set(changed, feats, cache_dir=tmp_path)
    assert not other_data.cached and other_data.path != first.path
    other_feats = reference_set(digits, digits_features("digits"), cache_dir=tmp_path)
    assert not other_feats.cached and other_feats.features.shape[1] == 128
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_inception_features_sanity():
    from lcsc.metrics.inception import inception_weights_path

    try:
        inception_weights_path()
    except ConfigError as exc:
        pytest.skip(f"optional extra 'inception' not installed: {exc}")
    f = feature_space("inception")
    imgs = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    a, b = f(imgs), f(imgs)
    assert a.shape == (3, 2048) and torch.isfinite(a).all() and torch.equal(a, b)
    assert f(torch.rand(2, 3, 16, 16) * 2 - 1).shape == (2, 2048)
    assert not f.has_logits


@pytest.mark.parametrize("space", ["digits", "digits2", "digits3", "digits4"])
def test_fd_grows_as_noise_is_added_to_real_images(digits, space):
    from lcsc.metrics import evaluate_images

    feats = digits_features(space)
    ref = reference_set(digits, feats)
    gen = torch.Generator().manual_seed(0)
    fds = []
    for std in (0.0, 0.1, 0.25, 0.5, 1.0):
        noisy = (digits.images + std * torch.randn(digits.images.shape, generator=gen)).clamp(-1, 1)
        fds.append(evaluate_images(noisy, ref, feats, ("fd",)).fd)
    assert abs(fds[0]) < 1e-6 * max(fds) and all(b > a for a, b in zip(fds, fds[1:])), fds
