"""Power-function EMA: σ_rel ↔ γ, the closed-form step weights, recorder snapshots, and exact resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy.integrate import quad

from lcsc.checkpoints.format import read_metadata
from lcsc.data import load_digits_data
from lcsc.errors import ConfigError
from lcsc.models import ModelConfig
from lcsc.training import CheckpointRecorder, PowerEMA, RecordConfig, TrainConfig, Trainer
from lcsc.training.phema import SIGMA_REL_MAX, gamma_to_sigma_rel, phema_name, sigma_rel_to_gamma
from lcsc.training.state import STATE_NAME, load_train_state, save_train_state

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("sigma_rel", [0.002, 0.01, 0.05, 0.0712, 0.1, 0.2, 0.28, 0.2886])
def test_sigma_rel_gamma_round_trip(sigma_rel):
    gamma = sigma_rel_to_gamma(sigma_rel)
    assert isinstance(gamma, float) and gamma >= 0
    assert gamma_to_sigma_rel(gamma) == pytest.approx(sigma_rel, rel=1e-12)


def test_known_values():
    # σ_rel² = (γ+1) / ((γ+2)² (γ+3)); at γ = 6.94: 7.94 / (8.94² · 9.94) = 7.94 / 794.44 → σ_rel = 0.099972…
    assert gamma_to_sigma_rel(6.94) == pytest.approx(math.sqrt(7.94 / (8.94**2 * 9.94)), rel=1e-14)
    assert gamma_to_sigma_rel(6.94) == pytest.approx(0.099972, abs=1e-6)
    # the EDM2 pair: σ_rel 0.05 / 0.10 ↔ γ 16.97 / 6.94
    assert sigma_rel_to_gamma(0.05) == pytest.approx(16.97, abs=0.01)
    assert sigma_rel_to_gamma(0.10) == pytest.approx(6.94, abs=0.01)
    assert gamma_to_sigma_rel(0.0) == pytest.approx(SIGMA_REL_MAX) == pytest.approx(0.288675, abs=1e-6)
    assert phema_name(0.05) == "sigma-0.050" and phema_name(0.1234) == "sigma-0.123"


def _profile_width(gamma: float) -> float:
    """Standard deviation of the EDM2 averaging profile p(τ) ∝ τ^γ on (0, 1] (the snapshot's length is 1),
    integrated numerically: what σ_rel means (Karras et al. 2024, Sec. 3.1), not our closed form."""
    moment = lambda k: quad(lambda x: x ** (gamma + k), 0.0, 1.0, epsabs=0, epsrel=1e-13)[0]  # noqa: E731
    mean, second = moment(1) / moment(0), moment(2) / moment(0)
    return math.sqrt(second - mean * mean)


@pytest.mark.parametrize("sigma_rel", [0.01, 0.05, 0.10, 0.15, 0.28])
def test_gamma_is_the_profile_of_that_relative_width(sigma_rel):
    gamma = sigma_rel_to_gamma(sigma_rel)
    assert _profile_width(gamma) == pytest.approx(sigma_rel, rel=1e-9)
    # EDM2: γ solves σ_rel² = (γ+1) / ((γ+2)² (γ+3))
    assert (gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)) == pytest.approx(sigma_rel**2, rel=1e-10)
    assert gamma_to_sigma_rel(gamma) == pytest.approx(_profile_width(gamma), rel=1e-9)


def test_widest_profile_is_the_uniform_average():
    assert _profile_width(0.0) == pytest.approx(SIGMA_REL_MAX, rel=1e-12)  # γ = 0: std of U(0, 1) = 1/√12
    assert sigma_rel_to_gamma(SIGMA_REL_MAX * (1 - 1e-9)) == pytest.approx(0.0, abs=1e-6)


def test_power_ema_averages_with_the_asked_width():
    """Run PowerEMA on the iterates θ_s = (s/T, (s/T)²): its two averages are the first two moments of its step
    weights, whose standard deviation must be σ_rel (measured: within 2e-5 at T = 1000)."""
    T = 1000
    model = torch.nn.Linear(2, 1, bias=False).double()
    ema = PowerEMA(model, [0.05, 0.2])
    with torch.no_grad():
        for s in range(1, T + 1):
            model.weight.copy_(torch.tensor([[s / T, (s / T) ** 2]], dtype=torch.float64))
            ema.update(s)
    for name, sigma_rel in ema.sigma_rels.items():
        mean, second = ema.state_dict_for(name)["weight"].reshape(-1).tolist()
        assert math.sqrt(second - mean**2) == pytest.approx(sigma_rel, rel=1e-4), name


@pytest.mark.parametrize("bad", [0.0, -0.1, 0.29, float("nan")])
def test_bad_sigma_rel(bad):
    with pytest.raises(ConfigError, match=r"sigma_rel .* must be in \(0, 0\.2887\)"):
        sigma_rel_to_gamma(bad)
    with pytest.raises(ConfigError):
        PowerEMA(torch.nn.Linear(1, 1), [bad])
    with pytest.raises(ConfigError, match="> -1"):
        gamma_to_sigma_rel(-1.0)


def test_update_matches_closed_form_step_weights():
    """θ̄_T = Σ_s w_s θ_s with w_s = (s^(γ+1) − (s−1)^(γ+1)) / T^(γ+1): the initial weights drop out."""
    model = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(1e6)  # initial weights: must get no share
    ema = PowerEMA(model, [0.05, 0.15])
    rng = np.random.default_rng(0)
    thetas = rng.normal(size=300).cumsum()
    for t, theta in enumerate(thetas, start=1):
        with torch.no_grad():
            model.weight.fill_(theta)
        ema.update(t)
        if t in (1, 7, 100, 300):
            s = np.arange(1, t + 1, dtype=np.float64)
            for name, gamma in ema.gammas.items():
                w = (s ** (gamma + 1) - (s - 1) ** (gamma + 1)) / float(t) ** (gamma + 1)
                assert w.sum() == pytest.approx(1.0, abs=1e-12)
                got = float(ema.state_dict_for(name)["weight"])
                assert got == pytest.approx(float(w @ thetas[:t]), rel=1e-10, abs=1e-10)
    assert ema.names == ["sigma-0.050", "sigma-0.150"] and len(ema) == 2
    with pytest.raises(ConfigError, match="step 0 must be >= 1"):
        ema.update(0)


def test_state_dict_round_trip_and_duplicates():
    model = torch.nn.Linear(3, 2)
    ema = PowerEMA(model, [0.05])
    ema.update(1)
    other = PowerEMA(model, [0.05])
    with torch.no_grad():
        model.weight.add_(1.0)
    other.load_state_dict(ema.state_dict())
    assert set(ema.state_dict()) == {"sigma-0.050/weight", "sigma-0.050/bias"}
    assert all(torch.equal(a, b) for a, b in zip(ema.shadows["sigma-0.050"], other.shadows["sigma-0.050"]))
    with pytest.raises(ConfigError, match="lacks 2 tensors"):
        other.load_state_dict({})
    with pytest.raises(ConfigError, match="both sigma-0.050"):
        PowerEMA(model, [0.05, 0.0501])


def _drive(rec: CheckpointRecorder, model: torch.nn.Module, steps: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        loss = model(torch.randn(8, 4, generator=gen)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.step(step)


def test_recorder_writes_snapshots_at_the_right_steps(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    rec = CheckpointRecorder(tmp_path, model, total_steps=10, window=1, interval=10, batch_size=4,
                             phema_sigma_rels=[0.05, 0.1], phema_every=4, config={"kind": "toy"},
                             metadata={"data": "x"})
    _drive(rec, model, 10)
    for name in ("sigma-0.050", "sigma-0.100"):
        got = sorted(p.name for p in (tmp_path / "phema" / name).iterdir())
        assert got == [f"phema-{s:09d}.safetensors" for s in (4, 8, 10)]
    path = tmp_path / "phema/sigma-0.100/phema-000000008.safetensors"
    meta = read_metadata(path)
    assert meta["step"] == "8" and meta["images_seen"] == "32" and meta["data"] == "x"
    assert float(meta["sigma_rel"]) == 0.1 and float(meta["gamma"]) == pytest.approx(6.9372, abs=1e-4)
    assert meta["config"] == '{"kind": "toy"}' and meta["phema_name"] == "sigma-0.100"
    last = load_file(tmp_path / "phema/sigma-0.050/phema-000000010.safetensors")
    assert all(torch.equal(last[k], v) for k, v in rec.phema.state_dict_for("sigma-0.050").items())


def test_recorder_default_interval_and_disk_accounting(tmp_path):
    model = torch.nn.Linear(64, 64)
    plain = CheckpointRecorder(tmp_path, model, total_steps=100, window=10, interval=10)
    rec = CheckpointRecorder(tmp_path, model, total_steps=100, window=10, interval=10, phema_sigma_rels=[0.05, 0.1])
    assert rec.phema_steps == frozenset(range(3, 100, 3)) | {100}  # 100 // 32 = 3, and the last step
    full = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    assert rec.bytes_needed() - plain.bytes_needed() == 34 * 2 * (full + 64 * 1024)
    with pytest.raises(ConfigError, match="disk budget"):
        CheckpointRecorder(tmp_path, model, total_steps=100, window=10, interval=10, phema_sigma_rels=[0.05],
                           disk_budget=plain.bytes_needed() + 10)
    with pytest.raises(ConfigError, match="phema_every=0"):
        CheckpointRecorder(tmp_path, model, total_steps=100, phema_sigma_rels=[0.05], phema_every=0)
    assert not plain.phema_steps and not (tmp_path / "phema").exists()


def test_record_config_validation():
    assert RecordConfig(phema_sigma_rels=[0.05, 0.1]).phema_sigma_rels == (0.05, 0.1)
    with pytest.raises(ConfigError, match="sigma_rel 0.5"):
        RecordConfig(phema_sigma_rels=(0.5,))
    with pytest.raises(ConfigError, match="phema_every=0"):
        RecordConfig(phema_every=0)


@pytest.fixture(scope="module")
def digits():
    return load_digits_data()


def _config(**record) -> TrainConfig:
    return TrainConfig(model=ModelConfig(kind="dm", channels=8), iterations=12, batch_size=8, seed=3,
                       record=RecordConfig(window=3, interval=3, **record), log_every=1, save_every=6,
                       sample_count=0)


def _phema_files(run) -> dict[str, dict[str, torch.Tensor]]:
    return {str(p.relative_to(run)): load_file(p) for p in sorted((run / "phema").rglob("*.safetensors"))}


def test_resume_gives_identical_phema_snapshots(tmp_path, digits):
    cfg = _config(phema_sigma_rels=(0.05, 0.1), phema_every=3)
    Trainer(cfg, tmp_path / "full", data=digits, progress=False).run()

    def crash(record):
        if record["step"] == 7:  # the last saved state is step 6 (save_every); steps 7+ are redone
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "part", data=digits, progress=False).run(on_log=crash)
    resumed = Trainer(cfg, tmp_path / "part", data=digits, progress=False)
    assert resumed.step == 6
    resumed.run()
    full, part = _phema_files(tmp_path / "full"), _phema_files(tmp_path / "part")
    assert sorted(full) == [f"phema/{n}/phema-{s:09d}.safetensors" for n in ("sigma-0.050", "sigma-0.100")
                            for s in (3, 6, 9, 12)]
    assert sorted(part) == sorted(full)
    for name, tensors in full.items():
        assert all(torch.equal(tensors[k], part[name][k]) for k in tensors), name
    # the snapshot is not the raw weights (the average is real)
    raw = load_file(tmp_path / "full/last.safetensors")
    assert not torch.equal(raw["net.conv_in.weight"], full["phema/sigma-0.050/phema-000000012.safetensors"]
                           ["net.conv_in.weight"])


def test_defaults_record_no_phema_and_old_states_resume(tmp_path, digits):
    cfg = _config()
    t = Trainer(cfg, tmp_path, data=digits, progress=False)
    assert len(t.phema) == 0 and not t.recorder.phema_steps

    def crash(record):
        if record["step"] == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        t.run(on_log=crash)
    assert not (tmp_path / "phema").exists()
    # a state written before RecordConfig had phema settings (and without a phema entry) still resumes
    state = load_train_state(tmp_path / "state" / STATE_NAME)
    for key in ("phema_sigma_rels", "phema_every"):
        del state["config"]["record"][key]
    del state["phema"]
    save_train_state(tmp_path / "state" / STATE_NAME, **state)
    assert Trainer(cfg, tmp_path, data=digits, progress=False).step == 6
