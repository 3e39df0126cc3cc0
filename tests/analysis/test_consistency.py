"""lcsc analyze consistency: same-noise PSNR between models (faster-DM-training paper, Sec. 3.1)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.analysis.consistency import (
    PSNR_MAX,
    consistency,
    plot_consistency,
    psnr,
    psnr_matrix,
    resolve_models,
    same_inputs,
    to_json,
)
from lcsc.checkpoints import save_checkpoint
from lcsc.errors import ConfigError
from lcsc.models import ModelConfig, build_model


def _write(path: Path, config: ModelConfig, seed: int) -> Path:
    """A random model of ``seed``: fresh weights plus noise (a fresh output layer is zero, so all would agree)."""
    torch.manual_seed(seed)
    state = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in build_model(config).state_dict().items()}
    return save_checkpoint(path, state, step=1, config=config.to_dict())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Random-init tiny DMs of two seeds, an identical copy of the first, a CM, and a 16×16 DM."""
    d = tmp_path_factory.mktemp("cons")
    dm = ModelConfig(kind="dm", channels=8)
    paths = {"a": _write(d / "a.safetensors", dm, 1), "b": _write(d / "b.safetensors", dm, 2),
             "cm": _write(d / "cm.safetensors", ModelConfig(kind="cm", channels=8), 3),
             "big": _write(d / "big.safetensors", ModelConfig(kind="dm", channels=8, resolution=16), 4)}
    paths["a_copy"] = Path(shutil.copy(paths["a"], d / "a_copy.safetensors"))
    return paths


def test_psnr_identical_is_infinite_and_known_mse_matches_formula():
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    assert torch.isinf(psnr(x, x)).all()
    y = x + 0.1  # MSE exactly 0.01 per image
    assert psnr(x, y) == pytest.approx([10 * math.log10(PSNR_MAX ** 2 / 0.01)] * 3, rel=1e-6)
    assert psnr(x, y)[0].item() == pytest.approx(26.0206, abs=1e-3)  # 10·log10(4 / 0.01)
    mean, median = psnr_matrix([x, y], [x, y])
    assert np.isinf(np.diag(mean)).all() and mean[0, 1] == pytest.approx(26.0206, abs=1e-3)
    assert median[1, 0] == pytest.approx(mean[1, 0])
    with pytest.raises(ConfigError):
        psnr(x, x[:2])


def test_mean_and_median_are_over_per_image_psnr():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.stack([torch.full((1, 2, 2), 0.1), torch.full((1, 2, 2), 1.0)])  # MSE 0.01 and 1
    mean, median = psnr_matrix([a], [b])
    expect = [10 * math.log10(4 / 0.01), 10 * math.log10(4 / 1.0)]
    assert mean[0, 0] == pytest.approx(np.mean(expect)) and median[0, 0] == pytest.approx(min(expect))


def test_identical_checkpoints_under_two_names_are_infinite_off_diagonal(tiny, one_thread):
    r = consistency([f"x={tiny['a']}", f"y={tiny['a_copy']}", f"z={tiny['b']}"], samples=4, dm_nfe=3, grid_noises=2)
    assert r.labels == ["x", "y", "z"]
    assert math.isinf(r.same_mean[0, 1]) and math.isinf(r.same_mean[1, 0]) and np.isinf(np.diag(r.same_mean)).all()
    assert math.isfinite(r.same_mean[0, 2])
    data = to_json(r)
    assert data["same_noise"]["mean"][0][1] is None and data["same_noise"]["infinite"][0][1] is True
    assert data["same_noise"]["infinite"][0][2] is False and data["off_diagonal_same_infinite"] is True
    json.dumps(data, allow_nan=False)  # strict JSON: no inf/nan left
    texts = [t.get_text() for t in plot_consistency(r).axes[0].texts]
    assert texts.count("∞") == 5  # 3 diagonal + the identical pair both ways


def test_unrelated_baseline_uses_different_noise_and_is_lower(tiny, one_thread):
    cfg = ModelConfig(kind="dm", channels=8)
    assert torch.equal(same_inputs(cfg, 4, 0, 1).noise, same_inputs(cfg, 4, 0, 1).noise)
    assert not torch.allclose(same_inputs(cfg, 4, 0, 1).noise, same_inputs(cfg, 4, 1_000_003, 1).noise)
    r = consistency([tiny["a"], tiny["b"]], samples=8, dm_nfe=3, grid_noises=3)
    assert r.settings["unrelated_seed"] != r.settings["seed"]
    assert r.off_diagonal_same > r.off_diagonal_unrelated + 3  # dB
    assert np.isfinite(r.unrelated_mean).all()  # even a model against itself is finite on unrelated noise
    assert tuple(r.grid.shape) == (2, 3, 1, 8, 8)
    assert r.same_mean[0, 1] == pytest.approx(r.same_mean[1, 0])


def test_dm_and_cm_together_each_at_its_own_nfe(tiny, one_thread):
    r = consistency([tiny["a"], tiny["cm"]], samples=4, dm_nfe=3, cm_nfe=1)
    assert r.kinds == ["dm", "cm"] and r.nfe == [3, 1]
    assert np.isfinite(r.same_mean[0, 1])


def test_bad_inputs_one_clear_error(tiny, tmp_path):
    with pytest.raises(ConfigError, match="one image shape") as err:
        consistency([tiny["a"], tiny["big"]], samples=2)
    assert str(tiny["a"]) in str(err.value) and str(tiny["big"]) in str(err.value)
    with pytest.raises(ConfigError, match="at least 2"):
        resolve_models([tiny["a"]])
    with pytest.raises(ConfigError, match="repeated: x"):
        resolve_models([f"x={tiny['a']}", f"x={tiny['b']}"])
    with pytest.raises(ConfigError, match="no such"):
        resolve_models([tiny["a"], tmp_path / "missing.safetensors"])
    with pytest.raises(ConfigError, match="last.safetensors"):
        resolve_models([tiny["a"], tmp_path])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from lcsc.cli.main import main

    out = tmp_path_factory.mktemp("cons-run") / "dm"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "dm", "--iterations", "30", "--batch-size", "32", "--channels", "8", "--record-window",
                     "20", "--record-interval", "5", "--sample-count", "0", "-o", str(out)]) == 0
    finally:
        torch.set_num_threads(old)
    return out


def test_cli_on_a_run_folder_and_checkpoints(tiny_run, tiny, tmp_path, one_thread, capsys):
    from lcsc.cli.main import main

    out = tmp_path / "out"
    rc = main(["analyze", "consistency", str(tiny_run), f"same={tiny_run / 'last.safetensors'}", f"cm={tiny['cm']}",
               "--quick", "--samples", "6", "--dm-nfe", "4", "-o", str(out)])
    assert rc == 0
    for name in ("consistency.json", "consistency.png", "consistency.md", "consistency_samples.png",
                 "consistency.config.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / "consistency.json").read_text())
    assert data["labels"] == ["dm", "same", "cm"] and data["nfe"] == [4, 4, 1]
    assert data["same_noise"]["infinite"][0][1] and data["same_noise"]["mean"][0][2] is not None
    assert data["settings"]["samples"] == 6 and data["settings"]["psnr_max"] == 2.0
    assert "same-noise PSNR" in capsys.readouterr().out
    from PIL import Image

    w, h = Image.open(out / "consistency_samples.png").size
    assert h < w  # 3 rows of models, 4 columns of noises (--quick)
    assert main(["analyze", "consistency", str(tiny["a"]), str(tiny["big"]), "-o", str(tmp_path / "bad")]) == 2
    assert "one image shape" in capsys.readouterr().err
