"""``lcsc analyze loss-landscape``: endpoints equal the checkpoints' own losses; bad grids/architectures error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.analysis.fixed_loss import load_checkpoint, make_fixed_loss
from lcsc.analysis.loss_landscape import analyze_loss_landscape, summarize, t_grid
from lcsc.cli.main import main
from lcsc.errors import ConfigError
from tests.analysis.tiny_models import tiny_dm_checkpoint


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return tiny_dm_checkpoint(tmp_path / "a.safetensors", 0), tiny_dm_checkpoint(tmp_path / "b.safetensors", 1)


def test_t_grid_contains_0_and_1_and_rejects_bad_input():
    ts = t_grid(-0.5, 1.5, 4)
    assert 0.0 in ts and 1.0 in ts and ts[0] == -0.5 and ts[-1] == 1.5 and np.all(np.diff(ts) > 0)
    for lo, hi, n in ((0.0, 1.0, 1), (1.0, 1.0, 5), (2.0, 1.0, 5)):
        with pytest.raises(ConfigError):
            t_grid(lo, hi, n)


def test_summary_min_and_barrier():
    c = summarize("a", "b", [-0.5, 0.0, 0.5, 1.0, 1.5], [3.0, 1.0, 2.5, 2.0, 0.5])
    assert (c.loss_a, c.loss_b, c.min_loss, c.t_min) == (1.0, 2.0, 0.5, 1.5)
    assert c.barrier == pytest.approx(0.5)


def test_endpoints_equal_direct_losses_and_deterministic(pair, one_thread):
    a, b = pair
    r1 = analyze_loss_landscape([(a, b)], lo=-0.5, hi=1.5, points=5, batch=16, seed=3, progress=False)
    r2 = analyze_loss_landscape([(a, b)], lo=-0.5, hi=1.5, points=5, batch=16, seed=3, progress=False)
    c = r1.curves[0]
    with torch.no_grad():
        direct_a = float(make_fixed_loss(a, 16, 3)(load_checkpoint(a)))
        direct_b = float(make_fixed_loss(a, 16, 3)(load_checkpoint(b)))
    assert c.loss_a == pytest.approx(direct_a, rel=1e-6)
    assert c.loss_b == pytest.approx(direct_b, rel=1e-6)
    assert c.losses == r2.curves[0].losses
    assert c.loss_a != pytest.approx(c.loss_b)
    # CLTS timesteps give a different (but again deterministic) batch
    r3 = analyze_loss_landscape([(a, b)], points=2, batch=16, seed=3, timesteps="clts", progress=False)
    assert r3.curves[0].loss_a != pytest.approx(c.loss_a)


def test_mismatched_architectures_is_one_error(tmp_path: Path, pair):
    a, _ = pair
    wide = tiny_dm_checkpoint(tmp_path / "wide.safetensors", 2, channels=16)
    with pytest.raises(ConfigError, match="different architectures") as info:
        analyze_loss_landscape([(a, wide)], points=3, batch=4, progress=False)
    assert "a.safetensors" in str(info.value) and "wide.safetensors" in str(info.value)


def test_cli_two_pairs_and_errors(tmp_path: Path, pair, capsys, one_thread):
    a, b = pair
    out = tmp_path / "out"
    rc = main(["analyze", "loss-landscape", str(a), str(b), "--pair", f"{b},{a}", "--quick", "--no-progress",
               "-o", str(out)])
    assert rc == 0
    data = json.loads((out / "loss-landscape.json").read_text())
    p1, p2 = data["pairs"]
    assert p1["loss_a"] == pytest.approx(p2["loss_b"], rel=1e-6) and p1["loss_b"] == pytest.approx(p2["loss_a"], rel=1e-6)
    assert (out / "loss-landscape.png").stat().st_size > 0 and "barrier" in (out / "loss-landscape.md").read_text()
    capsys.readouterr()
    assert main(["analyze", "loss-landscape", str(a), str(b), "--points", "1", "-o", str(out)]) == 2
    assert "--points" in capsys.readouterr().err
    assert main(["analyze", "loss-landscape", str(a), str(b), "--range", "1:0", "-o", str(out)]) == 2
    assert "--range" in capsys.readouterr().err


def tiny_cm_run(folder: Path, seed: int) -> Path:
    """A random tiny CM checkpoint inside a run folder holding a CT ``train_config.json``."""
    from lcsc.atomic import write_json
    from lcsc.checkpoints import save_checkpoint
    from lcsc.models import build_model
    from lcsc.models.config import ModelConfig
    from lcsc.training.config import ConsistencyConfig, TrainConfig

    cfg = ModelConfig(kind="cm", channels=8)
    write_json(folder / "train_config.json",
               TrainConfig(model=cfg, iterations=100, consistency=ConsistencyConfig(mode="ct")).to_dict())
    torch.manual_seed(seed)
    sd = build_model(cfg).state_dict()
    sd = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in sd.items()}
    return save_checkpoint(folder / f"m{seed}.safetensors", sd, step=100, config=cfg.to_dict(),
                           extra={"data": json.dumps({"spec": "digits", "resolution": 8})})


def test_cm_uses_ct_loss_deterministically(tmp_path: Path, one_thread):
    a, b = tiny_cm_run(tmp_path, 0), tiny_cm_run(tmp_path, 1)
    c = analyze_loss_landscape([(a, b)], points=2, batch=8, seed=5, progress=False).curves[0]
    with torch.no_grad():
        direct_a = float(make_fixed_loss(a, 8, 5)(load_checkpoint(a)))
    assert c.loss_a == pytest.approx(direct_a, rel=1e-6) and np.isfinite(c.loss_b)
    with pytest.raises(ConfigError, match="DMs only"):
        make_fixed_loss(a, 8, 5, timesteps="clts")
