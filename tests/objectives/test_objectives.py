from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lcsc.errors import ConfigError
from lcsc.objectives import FunctionObjective, SeededObjective, ValidationLossObjective, load_objective
from lcsc.objectives.base import VALIDATION_SEED_OFFSET, check_noise_separation, noise_fingerprint


def test_validation_loss_matches_direct_computation() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    obj = ValidationLossObjective(
        torch.nn.Linear(4, 3), torch.nn.functional.cross_entropy, (x, y), batch_size=7
    )
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(model(x), y))
    assert abs(obj.score(model.state_dict()) - expected) < 1e-6
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    assert (
        abs(
            ValidationLossObjective(torch.nn.Linear(4, 3), torch.nn.functional.cross_entropy, batches).score(
                model.state_dict()
            )
            - expected
        )
        < 1e-6
    )
    with pytest.raises(ConfigError, match="must be equal"):
        ValidationLossObjective(model, torch.nn.functional.mse_loss, (x, y[:3])).score(model.state_dict())


def test_loader_accepts_function_factory_and_object(tmp_path: Path) -> None:
    (tmp_path / "objs.py").write_text(
        "direction = 'maximize'\n"
        "def fn(sd):\n    return float(sd['w'].sum())\n"
        "fn.direction = 'maximize'\n"
        "class Obj:\n    direction = 'minimize'\n    def score(self, sd):\n        return 1.0\n"
        "def factory():\n    return Obj()\n"
        "instance = Obj()\n"
    )
    sd = {"w": torch.ones(3)}
    fn = load_objective(f"{tmp_path}/objs.py:fn")
    assert isinstance(fn, FunctionObjective) and fn.direction == "maximize" and fn.score(sd) == 3.0
    assert load_objective(f"{tmp_path}/objs.py:factory").score(sd) == 1.0
    assert load_objective(f"{tmp_path}/objs.py:instance", direction="maximize").direction == "maximize"


def test_loader_errors(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise ValueError('boom')\n")
    with pytest.raises(ConfigError, match="importing .*broken.py failed: ValueError: boom"):
        load_objective(f"{tmp_path}/broken.py:x")
    (tmp_path / "obj.py").write_text("x = 3\n")
    with pytest.raises(ConfigError, match="neither an objective nor a callable"):
        load_objective(f"{tmp_path}/obj.py:x")


class _Sampler(SeededObjective):
    def score(self, sd):
        return float(torch.randn(4, generator=self.generator()).mean())


def test_seeded_objective_same_noise_twice_and_held_out_differs() -> None:
    obj = _Sampler(noise_seed=5)
    assert obj.score({}) == obj.score({})
    held = obj.held_out()
    assert held.role == "held_out" and obj.role == "search" and held.score({}) != obj.score({})
    with pytest.raises(ConfigError, match="draws the same noise"):
        _Sampler(noise_seed=1, held_out_seed=1)


def test_noise_guard_compares_the_noise_not_the_seed_integers() -> None:
    """CPU seeds alias modulo 2**32: seed s + 2**32 is another integer but the same noise."""
    same = [noise_fingerprint(torch.Generator().manual_seed(s)) for s in (7, 7 + 2**32, 7 + 2 * 2**32)]
    assert len(set(same)) == 1 and noise_fingerprint(torch.Generator().manual_seed(8)) != same[0]
    with pytest.raises(ConfigError, match="draws the same noise as the search seed 7"):
        _Sampler(noise_seed=7, held_out_seed=7 + 2**32)
    aliased_validation = _Sampler(noise_seed=7, held_out_seed=7 + VALIDATION_SEED_OFFSET)  # held-out = validation
    with pytest.raises(ConfigError, match="validation noise .* identical to the held-out noise"):
        check_noise_separation(aliased_validation)
    check_noise_separation(_Sampler(noise_seed=7))


@pytest.mark.parametrize("name", ["fd-digits4", "kid-digits4", "mean:fd-digits,fd-digits4", "max:fd-digits4,fd-digits"])
def test_a_report_only_space_is_never_a_search_objective(name, tmp_path):
    from lcsc.objectives.builtin import builtin_objective

    with pytest.raises(ConfigError, match="digits4 is a report-only space"):
        builtin_objective(tmp_path / "no-checkpoints-needed", name)
