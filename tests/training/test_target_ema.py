"""CM target network θ⁻ as an EMA of θ (``ConsistencyConfig.target_ema``, original CD): the update rule, that the
loss gets θ⁻, and that a killed and resumed run equals the uninterrupted one, θ⁻ included."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file

from lcsc.data import load_digits_data
from lcsc.models import ModelConfig
from lcsc.training import ConsistencyConfig, RecordConfig, TrainConfig, Trainer, train
from lcsc.training.state import STATE_NAME, load_train_state

MU = 0.9


@pytest.fixture(scope="module")
def digits():
    return load_digits_data()


def _config(target_ema: float = MU, **kw) -> TrainConfig:
    base = dict(model=ModelConfig(kind="cm", channels=8), iterations=12, batch_size=16, seed=3,
                record=RecordConfig(window=6, interval=3), log_every=2, save_every=5, sample_count=0,
                consistency=ConsistencyConfig(mode="ct", s0=10, s1=10, target_ema=target_ema))
    return TrainConfig(**(base | kw))


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_target_is_an_ema_of_the_online_weights(tmp_path, digits):
    """After each step θ⁻ ← μ·θ⁻ + (1 − μ)·θ_new (bit-exact as torch.lerp, and equal to the formula to rounding)."""
    trainer = Trainer(_config(), tmp_path, data=digits, progress=False)
    assert trainer.target is not None and trainer.target is not trainer.model
    for step in (1, 2):  # step 1 starts from θ⁻ = θ₀; step 2 from a θ⁻ that differs from θ₁
        before = _params(trainer.target)
        trainer.train_step(step)
        online, target = _params(trainer.model), _params(trainer.target)
        for k, old in before.items():
            assert torch.equal(target[k], torch.lerp(old, online[k], 1 - MU)), k
            assert torch.allclose(target[k], MU * old + (1 - MU) * online[k], rtol=0, atol=1e-6), k
        assert any(not torch.equal(target[k], online[k]) for k in target)
        assert any(not torch.equal(target[k], before[k]) for k in target)


def test_loss_is_given_the_target_network(tmp_path, digits):
    """The trainer hands the loss θ⁻ (not θ, not None), and with θ⁻ ≠ θ the loss value depends on it."""
    trainer = Trainer(_config(), tmp_path / "ema", data=digits, progress=False)
    seen = []
    loss_fn = trainer.loss_fn
    trainer.loss_fn = lambda *args: seen.append(args[-1]) or loss_fn(*args)
    trainer.train_step(1)
    trainer.train_step(2)
    assert seen == [trainer.target, trainer.target]
    x, _ = digits.sample_batch(16, torch.Generator().manual_seed(0))
    with_target = loss_fn(trainer.model, x, None, torch.Generator().manual_seed(1), 3, trainer.target)[0]
    without = loss_fn(trainer.model, x, None, torch.Generator().manual_seed(1), 3, None)[0]
    assert float(with_target.detach()) != pytest.approx(float(without.detach()), rel=1e-4)
    plain = Trainer(_config(0.0), tmp_path / "plain", data=digits, progress=False)
    assert plain.target is None  # θ⁻ = stop-grad(θ): the loss evaluates the online model under no_grad


def test_resume_with_a_target_ema_is_bit_identical(tmp_path, digits):
    """Killed after step 6 (last state: step 3) and resumed: weights, θ⁻ and EMA equal the uninterrupted run's."""
    cfg = _config(ema_half_lives=(2.0,), iterations=8, save_every=3)
    train(cfg, tmp_path / "full", data=digits, progress=False)

    def crash(record):
        if record["step"] == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "part", data=digits, progress=False).run(on_log=crash)
    resumed = Trainer(cfg, tmp_path / "part", data=digits, progress=False)
    assert resumed.step == 3
    resumed.run()
    for name in ("last.safetensors", "ema/hl-2/ema-000000008.safetensors"):
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "part" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    ta = load_train_state(tmp_path / "full/state" / STATE_NAME)["target"]
    tb = load_train_state(tmp_path / "part/state" / STATE_NAME)["target"]
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert all(torch.equal(resumed.target.state_dict()[k], tb[k]) for k in tb)
    online = copy.deepcopy(resumed.model.state_dict())
    assert any(not torch.equal(online[k], tb[k]) for k in tb)  # θ⁻ really is a separate, lagging copy
