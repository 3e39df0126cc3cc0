"""CLTS timestep sampler, Min-SNR-γ weighting and MDLRC schedule (faster-dm-training plug-ins)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import chisquare

from lcsc.diffusion.loss import DDPMLoss
from lcsc.diffusion.schedule import NoiseSchedule
from lcsc.errors import ConfigError
from lcsc.models import ModelConfig, build_model
from lcsc.training.clts import (
    CLTSSampler,
    clts_lambda,
    default_sigma,
    gaussian_timestep_probs,
    uniform_sigma_fraction,
)
from lcsc.training.mdlrc import MomentumDecaySchedule
from lcsc.training.minsnr import MinSNRWeighting

T = 1000
TARGET = 100


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------- CLTS


@pytest.mark.parametrize("step", [0, TARGET // 2, 2 * TARGET])
def test_clts_samples_match_pk_chisquare(step):
    sampler = CLTSSampler(T, total_steps=4 * TARGET, target=TARGET)
    t = sampler(200_000, T, _gen(step + 1), "cpu", step)
    assert t.dtype == torch.long and t.shape == (200_000,)
    assert int(t.min()) >= 0 and int(t.max()) < T
    bins = 20
    counts = torch.bincount(t // (T // bins), minlength=bins).double()
    expected = sampler.probs(step).view(bins, -1).sum(1) * t.numel()
    assert chisquare(counts.numpy(), expected.numpy()).pvalue > 1e-3


def test_clts_lambda_clamps_and_probs_saturate():
    assert clts_lambda(0, TARGET) == 0.0
    assert clts_lambda(TARGET // 2, TARGET) == 0.5
    assert clts_lambda(10 * TARGET, TARGET) == 1.0
    assert clts_lambda(-5, TARGET) == 0.0
    sampler = CLTSSampler(T, total_steps=4 * TARGET, target=TARGET)
    assert torch.equal(sampler.probs(10 * TARGET), sampler.probs(TARGET))
    assert torch.allclose(sampler.probs(TARGET), sampler.gaussian_probs())
    for step in (0, TARGET // 2, TARGET):
        p = sampler.probs(step)
        assert p.dtype == torch.float64 and p.shape == (T,)
        assert math.isclose(float(p.sum()), 1.0, abs_tol=1e-12)


def test_clts_uniform_at_start_and_gaussian_peak():
    sampler = CLTSSampler(T, total_steps=400, mu=0.3)
    assert sampler.target == 100
    assert torch.allclose(sampler.probs(0), torch.full((T,), 1.0 / T, dtype=torch.float64))
    assert int(sampler.gaussian_probs().argmax()) == round(0.3 * T)
    p = gaussian_timestep_probs(50, mu=12.0, sigma=3.0)
    assert p.shape == (50,) and p.dtype == torch.float64 and int(p.argmax()) == 12
    assert math.isclose(float(p.sum()), 1.0, abs_tol=1e-12)


def test_clts_default_sigma():
    assert math.isclose(default_sigma(T), math.sqrt((T**2 - 1) / 12))
    assert math.isclose(uniform_sigma_fraction(), 1 / math.sqrt(12))
    assert math.isclose(uniform_sigma_fraction(T), default_sigma(T) / T)
    assert math.isclose(CLTSSampler(T, total_steps=10).sigma, default_sigma(T) / T)


def test_clts_same_seed_same_draws():
    sampler = CLTSSampler(T, total_steps=400)
    a = sampler(64, T, _gen(7), "cpu", 50)
    b = sampler(64, T, _gen(7), "cpu", 50)
    c = sampler(64, T, _gen(8), "cpu", 50)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "kwargs",
    [dict(mu=-0.1), dict(mu=1.5), dict(sigma=0.0), dict(sigma=-1.0), dict(target=0), dict(num_train_timesteps=1)],
)
def test_clts_bad_params(kwargs):
    args = dict(num_train_timesteps=T, total_steps=100) | kwargs
    with pytest.raises(ConfigError):
        CLTSSampler(**args)


def test_clts_wrong_T_is_config_error():
    with pytest.raises(ConfigError, match="T=500"):
        CLTSSampler(T, total_steps=100)(4, 500, _gen(), "cpu", 1)


# --------------------------------------------------------------------------------------------- MDLRC


def test_mdlrc_beta_matches_demon():
    b0, K = 0.9, 1000
    sched = MomentumDecaySchedule(lr=1e-4, total_steps=K, beta1=b0, beta_min=0.0)
    assert math.isclose(sched.beta_at(0), b0)
    assert math.isclose(sched.beta_at(K // 2), b0 * 0.5 / ((1 - b0) + b0 * 0.5))
    assert sched.beta_at(K) == 0.0
    assert sched.beta_at(3 * K) == 0.0


def test_mdlrc_floor_and_compensation():
    lr0, b0, K = 1e-4, 0.9, 1000
    sched = MomentumDecaySchedule(lr=lr0, total_steps=K, beta1=b0, beta_min=0.5)
    betas = [sched.beta_at(k) for k in range(K + 1)]
    assert min(betas) == 0.5
    assert all(x >= y for x, y in zip(betas, betas[1:]))  # non-increasing
    floor_lr = lr0 * (1 - b0) / (1 - 0.5)
    for k, beta in enumerate(betas):
        lr = sched.lr_at(k)
        if beta > 0.5:
            assert math.isclose(lr * (1 - beta), lr0 * (1 - b0), rel_tol=1e-12)
            assert math.isclose(lr, lr0 * (1 - b0 * k / K), rel_tol=1e-9)  # Demon closed form
        else:
            assert math.isclose(lr, floor_lr, rel_tol=1e-12)
    assert any(b == 0.5 for b in betas) and any(b > 0.5 for b in betas)


def test_mdlrc_without_compensation_and_warmup():
    sched = MomentumDecaySchedule(lr=2e-4, total_steps=100, compensate=False)
    assert all(sched.lr_at(k) == 2e-4 for k in range(0, 101, 10))
    warm = MomentumDecaySchedule(lr=2e-4, warmup=10, total_steps=100, compensate=False)
    assert math.isclose(warm.lr_at(5), 1e-4) and warm.lr_at(10) == 2e-4


@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.AdamW])
def test_mdlrc_apply_changes_optimizer(opt_cls):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = opt_cls([p], lr=1.0, betas=(0.9, 0.99))
    sched = MomentumDecaySchedule(lr=1e-3, total_steps=10, beta1=0.9, beta_min=0.0)
    out = sched.apply(opt, 5)
    group = opt.param_groups[0]
    assert out == {"lr": sched.lr_at(5), "beta1": sched.beta_at(5)}
    assert group["lr"] == sched.lr_at(5) and group["betas"] == (sched.beta_at(5), 0.99)
    assert group["betas"][0] < 0.9 and group["lr"] < 1e-3  # compensation lowers lr as β₁ falls
    p.grad = torch.ones(3)
    opt.step()  # Adam accepts the new betas
    assert torch.isfinite(p).all() and sched.last_step == 5


def test_mdlrc_state_dict_round_trip_and_mismatch():
    sched = MomentumDecaySchedule(lr=1e-4, total_steps=50, beta_min=0.3)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    sched.apply(opt, 17)
    state = sched.state_dict()
    fresh = MomentumDecaySchedule(lr=1e-4, total_steps=50, beta_min=0.3)
    fresh.load_state_dict(state)
    assert fresh.last_step == 17 and fresh.state_dict() == state
    other = MomentumDecaySchedule(lr=2e-4, total_steps=60, beta_min=0.3)
    with pytest.raises(ConfigError, match="lr") as info:
        other.load_state_dict(state)
    assert "decay_steps" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [dict(lr=0.0), dict(beta1=1.0), dict(beta_min=0.95), dict(beta_min=-0.1), dict(decay_steps=0), dict(warmup=-1)],
)
def test_mdlrc_bad_params(kwargs):
    with pytest.raises(ConfigError):
        MomentumDecaySchedule(**(dict(lr=1e-4, total_steps=10) | kwargs))


# --------------------------------------------------------------------------------------------- Min-SNR


def _linear_alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def test_minsnr_matches_reference():
    ac = _linear_alphas_cumprod()
    t = torch.arange(1000)
    w = MinSNRWeighting(5.0)(t, ac)
    assert w.dtype == torch.float32 and w.shape == t.shape
    snr = ac / (1 - ac)
    ref = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) / snr
    assert torch.allclose(w.double(), ref, rtol=1e-6, atol=1e-9)
    # DDPMLoss passes a float32 ᾱ table: 1 − ᾱ near t = 0 then carries ~1e-4 relative rounding error.
    assert torch.allclose(MinSNRWeighting(5.0)(t, ac.float()).double(), ref, rtol=1e-3, atol=1e-7)
    assert torch.all(w[snr <= 5.0] == 1.0)
    assert torch.all(w[snr > 5.0] < 1.0) and bool((snr > 5.0).any()) and bool((snr <= 5.0).any())
    t2 = torch.tensor([[0, 10], [500, 999]])
    assert MinSNRWeighting(5.0)(t2, ac).shape == (2, 2)


@pytest.mark.parametrize("gamma", [0.0, -1.0])
def test_minsnr_bad_gamma(gamma):
    with pytest.raises(ConfigError, match="gamma"):
        MinSNRWeighting(gamma)


# --------------------------------------------------------------------------------------------- combined


def test_clts_and_minsnr_inside_ddpm_loss():
    """The loss is mean_i w_i ‖ε_θ(x_t_i, t_i) − ε_i‖² / d with w = min(SNR(t), γ)/SNR(t) for ε-prediction (Hang et al.
    2023, Eq. 7), SNR = ᾱ/(1 − ᾱ) of the linear β schedule 1e-4…0.02: the reference is rebuilt from those formulas,
    not from MinSNRWeighting."""
    torch.manual_seed(0)
    schedule = NoiseSchedule(num_train_timesteps=T)
    sampler, weighting = CLTSSampler(T, total_steps=40, target=10), MinSNRWeighting(5.0)
    loss_fn = DDPMLoss(schedule, timesteps=sampler, weighting=weighting)
    model = build_model(ModelConfig(kind="dm", channels=8))
    x0 = torch.randn(16, 1, 8, 8)
    gen = _gen(3)
    state = gen.get_state()
    loss, info = loss_fn(model, x0, None, gen, step=5)
    assert loss.ndim == 0 and torch.isfinite(loss) and math.isfinite(info["mse"])
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    gen.set_state(state)
    ac = _linear_alphas_cumprod()  # float64, from the β formula
    torch.testing.assert_close(schedule.alphas_cumprod().double(), ac, rtol=1e-6, atol=0)
    t = sampler(16, T, gen, torch.device("cpu"), 5)
    noise = torch.randn(x0.shape, generator=gen)
    a = ac[t].float().view(-1, 1, 1, 1)
    with torch.no_grad():
        mse = ((model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t.float(), None) - noise) ** 2).flatten(1).mean(1)
    snr = ac[t] / (1 - ac[t])
    w = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) / snr
    assert bool((w < 0.9).any()) and bool((w == 1).any())  # both regimes drawn: a weighting bug shows
    want = float((mse.double() * w).mean())
    assert float(loss.detach()) == pytest.approx(want, rel=1e-4)
    assert abs(float(mse.mean()) - want) > 1e-2 * want  # the unweighted mean is far from it
