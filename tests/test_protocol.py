"""The evaluation protocol: noise roles, the deciding() guard, and decision paths that must not touch report data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcsc import protocol
from lcsc.generate import draw_inputs, generate
from lcsc.metrics.spaces import feature_space
from lcsc.models import ModelConfig, build_model
from lcsc.objectives import FunctionObjective
from lcsc.objectives.base import HELD_OUT_SEED_OFFSET, VALIDATION_SEED_OFFSET, noise_fingerprint
from lcsc.protocol import ProtocolError


def _fp(seed: int) -> str:
    return noise_fingerprint(torch.Generator().manual_seed(seed))


def test_noise_roles_are_disjoint_as_noise_not_only_as_integers():
    search = {s for s in range(6)}
    validation = {s + VALIDATION_SEED_OFFSET for s in range(6)}
    check = {s for t in range(6) for s in protocol.held_out_seeds(t, 3, "decision")}
    report = {s for t in range(6) for s in protocol.held_out_seeds(t, 3)}
    assert {protocol.noise_role(s) for s in search} == {"search"}
    assert {protocol.noise_role(s) for s in validation} == {"validation"}
    assert {protocol.noise_role(s) for s in check} == {"decision"}
    assert {protocol.noise_role(s) for s in report} == {"report"}
    assert protocol.noise_role(HELD_OUT_SEED_OFFSET + 2**32) == "report"  # same low 32 bits, same noise
    families = [{_fp(s) for s in f} for f in (search, validation, check, report)]
    assert sum(len(f) for f in families) == len(set().union(*families)) == 6 + 6 + 8 + 8


def test_seed_roles_and_spaces():
    assert [protocol.seed_role(s) for s in (0, 2, 3, 5, 6, 10, 11, 12)] == ["decision", "decision", "report", "report", "other", "report", "report", "other"]
    assert not set(protocol.DECISION_SPACES) & set(protocol.REPORT_SPACES)
    assert protocol.split_by_role([5, 0, 9, 3]) == {"decision": [0], "report": [3, 5], "other": [9]}
    with pytest.raises(ValueError, match="role"):
        protocol.held_out_seeds(0, 3, "search")


def test_the_guard_refuses_report_noise_spaces_and_seeds_inside_decisions_only():
    cfg = build_model(ModelConfig(kind="dm", channels=8)).config
    report = protocol.held_out_seeds(0, 1)[0]
    draw_inputs(cfg, 2, report)  # reporting: allowed
    with protocol.deciding("a test decision"):
        for ok in (0, VALIDATION_SEED_OFFSET, protocol.held_out_seeds(0, 1, "decision")[0]):
            draw_inputs(cfg, 2, ok)
        with pytest.raises(ProtocolError, match="a test decision: draws report noise"):
            draw_inputs(cfg, 2, report)
        with pytest.raises(ProtocolError, match="report noise"):
            draw_inputs(cfg, 2, torch.Generator().manual_seed(report + 2**32))
        with pytest.raises(ProtocolError, match="report-only feature space 'digits4'"):
            feature_space("digits4")
        assert protocol.decision_context() == "a test decision"
    assert protocol.decision_context() is None
    with pytest.raises(ProtocolError, match="training seed 4 is a report seed"):
        protocol.check_training_seed(4, "a rule")
    protocol.check_training_seed(1, "a rule")


def test_a_search_inside_a_decision_cannot_sample_report_noise(tmp_path):
    """A deliberate leak: an objective that samples on report noise, run as a decision, stops at its first draw."""
    from safetensors.torch import save_file

    from lcsc.checkpoints import CheckpointStack
    from lcsc.merge import StackMerger
    from lcsc.search import SearchConfig, run_search

    model = build_model(ModelConfig(kind="dm", channels=8))
    for step in (10, 20, 30):
        state = {k: v + 0.01 * step for k, v in model.state_dict().items()}
        save_file(state, str(tmp_path / f"ckpt-{step:09d}.safetensors"))
    merger = StackMerger(CheckpointStack.open(tmp_path, progress=False))
    calls = []

    def leaky(state):
        calls.append(1)
        model.load_state_dict(state)
        return float(generate(model, 4, protocol.held_out_seeds(0, 1)[0], nfe=1).mean())

    objective = FunctionObjective(leaky, name="leaky")
    with protocol.deciding("leak test"), pytest.raises(ProtocolError, match="leak test: draws report noise"):
        run_search(merger, objective, SearchConfig(evals=8, seed=0), tmp_path / "search", progress=False)
    assert len(calls) == 1
    run_search(merger, FunctionObjective(lambda s: float(np.mean([v.float().mean() for v in s.values()]))),
               SearchConfig(evals=8, seed=0), tmp_path / "search2", progress=False)


def test_rules_refuse_results_of_report_seeds_or_report_noise():
    job = {"train_seed": 0, "held_out_noise": "decision", "spaces": list(protocol.DECISION_SPACES)}
    protocol.check_decision_jobs([job], "rule")
    with pytest.raises(ProtocolError, match="training seed 3"):
        protocol.check_decision_jobs([job | {"train_seed": 3}], "rule")
    with pytest.raises(ProtocolError, match="'report' noise"):
        protocol.check_decision_jobs([job | {"held_out_noise": "report"}], "rule")
    with pytest.raises(ProtocolError, match="unrecorded"):
        protocol.check_decision_jobs([{"train_seed": 0}], "rule")
    with pytest.raises(ProtocolError, match="report-only"):
        protocol.check_decision_jobs([job | {"spaces": ["digits", "digits4"]}], "rule")
