"""``lcsc analyze hessian``: Lanczos on HVPs matches the dense Hessian; HVP of a quadratic is A·v; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from lcsc.analysis.hessian import make_hvp, top_hessian_eigs
from lcsc.cli.main import main
from lcsc.errors import ConfigError
from tests.analysis.tiny_models import tiny_dm_checkpoint


def test_hvp_of_quadratic_is_A_v():
    gen = torch.Generator().manual_seed(0)
    M = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    A = M @ M.T - 2 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    x = torch.randn(6, generator=gen, dtype=torch.float64, requires_grad=True)
    hvp = make_hvp(0.5 * x @ A @ x + b @ x, [x])
    for _ in range(3):
        v = torch.randn(6, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(hvp(v), A @ v, rtol=1e-12, atol=1e-12)


def test_lanczos_matches_dense_hessian_on_tiny_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)).double()
    n = sum(p.numel() for p in net.parameters())
    assert n <= 200
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 3, generator=gen, dtype=torch.float64)

    def loss_fn(model):
        return (model(x) - y).pow(2).mean()

    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def flat_loss(flat):
        chunks = torch.split(flat, [s.numel() for s in shapes])
        params = {k: c.view(s) for k, c, s in zip(names, chunks, shapes)}
        return (functional_call(net, params, (x,)) - y).pow(2).mean()

    dense = torch.autograd.functional.hessian(flat_loss, flat0)
    expected = torch.linalg.eigvalsh(dense).flip(0)[:4]
    vals, n_hvp, converged, _ = top_hessian_eigs(net, loss_fn, k=4, ncv=30, maxiter=200, tol=0, progress=False)
    assert converged and n_hvp > 0
    torch.testing.assert_close(torch.as_tensor(vals.copy()), expected, rtol=1e-4, atol=1e-8)


def test_k_out_of_range_is_one_error():
    net = torch.nn.Linear(2, 1)
    with pytest.raises(ConfigError, match="--k"):
        top_hessian_eigs(net, lambda m: m(torch.ones(1, 2)).sum() ** 2, k=3, progress=False)


def test_cli_hessian_two_checkpoints(tmp_path: Path, one_thread):
    a = tiny_dm_checkpoint(tmp_path / "a.safetensors", 0)
    b = tiny_dm_checkpoint(tmp_path / "b.safetensors", 1)
    out = tmp_path / "out"
    rc = main(["analyze", "hessian", str(a), str(b), "--quick", "--k", "2", "--no-progress", "-o", str(out)])
    assert rc == 0
    data = json.loads((out / "hessian.json").read_text())
    assert [Path(c["checkpoint"]).name for c in data["checkpoints"]] == ["a.safetensors", "b.safetensors"]
    for c in data["checkpoints"]:
        assert len(c["eigenvalues"]) == 2 and c["eigenvalues"][0] >= c["eigenvalues"][1]
        assert c["n_hvp"] > 0
    assert (out / "hessian.png").stat().st_size > 0 and (out / "hessian.md").exists()
    assert (out / "hessian.config.json").exists()
    # deterministic: the same seed gives the same eigenvalues
    again = main(["analyze", "hessian", str(a), "--quick", "--k", "2", "--no-progress", "-o", str(tmp_path / "o2")])
    assert again == 0
    first = json.loads((tmp_path / "o2" / "hessian.json").read_text())["checkpoints"][0]["eigenvalues"]
    assert first == pytest.approx(data["checkpoints"][0]["eigenvalues"], rel=1e-6)


def test_cli_missing_checkpoint_is_exit_2(tmp_path: Path, capsys):
    rc = main(["analyze", "hessian", str(tmp_path / "nope.safetensors"), "--quick", "-o", str(tmp_path / "o")])
    assert rc == 2
    assert "nope.safetensors" in capsys.readouterr().err
