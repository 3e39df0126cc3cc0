"""Anchored searches: anchors in the initial population (alone and as continued EMAs), the best never worse than the
best anchor for every optimiser × space, resume after a kill, the validation guard exporting the anchor."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.errors import ConfigError
from lcsc.merge import StackMerger
from lcsc.search import Journal, SearchConfig, run_search
from lcsc.search.journal import TIMING_FIELDS
from tests.search.test_optimizers import COMBOS, PrefixLoss
from tests.search.trajectory import regression_data, regression_student


def _refined(stack: CheckpointStack, steps: int = 150) -> dict[str, torch.Tensor]:
    """The last checkpoint trained further on the objective's rows: better than any window combination."""
    net = regression_student()
    net.load_state_dict(stack.checkpoint(stack.K_window - 1))
    x, y = regression_data(2000, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def anchored(regression_ckpts: Path) -> StackMerger:
    stack = CheckpointStack.open(regression_ckpts, progress=False)
    bad = {k: 0.5 * v for k, v in stack.checkpoint(0).items()}
    return StackMerger(stack.with_anchors([("good", _refined(stack)), ("bad", bad)]))


def _strip(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in Journal.load(path).records]


@pytest.mark.parametrize("optimizer,space", COMBOS)
def test_the_best_is_never_worse_than_the_best_anchor(anchored, tmp_path: Path, optimizer: str, space: str) -> None:
    obj = PrefixLoss(400)
    res = run_search(anchored, obj, SearchConfig(evals=24, optimizer=optimizer, space=space, seed=1), tmp_path,
                     progress=False)
    init = res.init_scores
    assert {"anchor good", "anchor bad"} <= set(init) and res.best_anchor_name == "anchor good"
    window_inits = [v for k, v in init.items() if not k.startswith("anchor ")]
    assert init["anchor good"] < min(window_inits)  # the anchor is out of the window's reach
    assert res.best_score <= init["anchor good"]
    good = np.zeros(anchored.K)
    good[anchored.K_window] = 1.0
    assert np.array_equal(res.best_anchor.reshape(-1), good)  # exactly the anchor, in every space
    assert res.best.reshape(anchored.G, -1).sum(axis=1).tolist() == [1.0] * anchored.G


def test_a_killed_anchored_search_resumes_to_the_uninterrupted_journal(anchored, regression_ckpts, tmp_path) -> None:
    cfg = SearchConfig(evals=30, seed=3)
    full = run_search(anchored, PrefixLoss(300), cfg, tmp_path / "full", progress=False)
    lines = (tmp_path / "full" / "journal.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "journal.jsonl").write_text("".join(lines[:15]) + lines[15][:40])  # killed mid-write
    resumed = run_search(anchored, PrefixLoss(300), cfg, tmp_path / "cut", resume=True, progress=False)
    assert _strip(tmp_path / "cut" / "journal.jsonl") == _strip(tmp_path / "full" / "journal.jsonl")
    assert np.array_equal(resumed.best, full.best)
    plain = StackMerger(CheckpointStack.open(regression_ckpts, progress=False))
    shutil.copytree(tmp_path / "cut", tmp_path / "other")
    with pytest.raises(ConfigError):  # other rows: refused, naming what differs
        run_search(plain, PrefixLoss(300), cfg, tmp_path / "other", resume=True, progress=False)


class _Distance:
    """Squared distance of the weights to a target: the search noise's target is ``search``, the validation
    noise's is ``validation`` (a fresh draw that happens to sit exactly on the anchor)."""

    direction, role = "minimize", "search"

    def __init__(self, search: dict[str, torch.Tensor], validation: dict[str, torch.Tensor], seed: int = 0) -> None:
        self.target, self.other, self.noise_seed, self.num_samples = search, validation, seed, 1

    def score(self, state: dict[str, torch.Tensor]) -> float:
        return float(sum((state[k].double() - t.double()).pow(2).sum() for k, t in self.target.items()))

    def validation(self) -> _Distance:
        out = _Distance(self.other, self.other, self.noise_seed + 1)
        out.role = "validation"
        return out


def test_the_guard_exports_the_anchor_when_nothing_beats_it_on_validation_noise(anchored, tmp_path) -> None:
    stack = anchored.stack
    good = stack.checkpoint(stack.K_window)
    mid = {k: 0.5 * (good[k] + stack.checkpoint(stack.K_window - 1)[k]) for k in good}  # between window and anchor
    res = run_search(anchored, _Distance(mid, good), SearchConfig(evals=30, seed=2, revalidate=3), tmp_path,
                     progress=False)
    reval = res.revalidation
    assert res.search_best is not None and not np.array_equal(res.search_best, res.best_anchor)  # search noise: not it
    assert reval["anchor"]["name"] == "anchor good" and reval["anchor"]["candidate"] in reval["candidates"]
    assert reval["exported_anchor"] and np.array_equal(res.best, res.best_anchor)
    assert min(reval["scores"]) == pytest.approx(0.0, abs=1e-9)
    from lcsc.search import write_search_outputs

    cfg = SearchConfig(evals=30, seed=2, revalidate=3)
    paths = write_search_outputs(res, anchored, _Distance(mid, good), cfg, tmp_path)
    card = paths["card_md"].read_text()
    assert "No candidate beat the best anchor (anchor good)" in card and "(best anchor)" in card


class _FailsAfter(PrefixLoss):
    """Raises from the ``n``-th call on (the shrunk point, scored after the search)."""

    def __init__(self, n: int) -> None:
        super().__init__(300)
        self.n = n

    def score(self, state_dict) -> float:
        if len(self.calls) >= self.n:
            raise RuntimeError("sampler diverged")
        return super().score(state_dict)


def test_a_shrunk_point_that_fails_to_score_is_not_exported(anchored, tmp_path) -> None:
    plain = run_search(anchored, PrefixLoss(300), SearchConfig(evals=24, seed=6), tmp_path / "a", progress=False)
    obj = _FailsAfter(24)
    res = run_search(anchored, obj, SearchConfig(evals=24, seed=6, shrink=0.5), tmp_path / "b", progress=False)
    assert res.shrink["score"] is None and "failed to score" in res.shrink["exported"]
    assert np.array_equal(res.best, plain.best) and res.best_score == plain.best_score


def test_shrinkage_goes_toward_the_best_anchor(anchored, tmp_path) -> None:
    obj = PrefixLoss(300)
    plain = run_search(anchored, obj, SearchConfig(evals=24, seed=6), tmp_path / "a", progress=False)
    shrunk = run_search(anchored, obj, SearchConfig(evals=24, seed=6, shrink=0.5), tmp_path / "b", progress=False)
    a0, a1 = plain.best_anchor.reshape(anchored.G, -1), plain.best.reshape(anchored.G, -1)
    assert np.allclose(shrunk.best, a0 + 0.5 * (a1 - a0), atol=1e-12)
    assert shrunk.shrink["toward"] == "anchor good" and shrunk.shrink["exported"] == "the shrunk point"


def test_the_continued_ema_individual_is_the_online_ema_at_the_windows_end(tmp_path) -> None:
    from safetensors.torch import load_file

    from lcsc.checkpoints import resolve_anchors
    from lcsc.training import CheckpointRecorder

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    rec = CheckpointRecorder(tmp_path / "run", net, total_steps=40, window=10, interval=1, ema_half_lives=[3])
    opt, gen = torch.optim.SGD(net.parameters(), lr=0.1), torch.Generator().manual_seed(0)
    for step in range(1, 41):
        opt.zero_grad()
        net(torch.randn(16, 4, generator=gen)).pow(2).mean().backward()
        opt.step()
        rec.step(step)
    window = tmp_path / "run" / "windows" / "40"
    stack = CheckpointStack.open(window, cache=False, progress=False)
    merger = StackMerger(stack.with_anchors(resolve_anchors(["ema-start:hl-3"], window, stack)))
    end = load_file(str(tmp_path / "run" / "ema" / "hl-3" / "ema-000000040.safetensors"))
    run_search(merger, _Distance(end, end), SearchConfig(evals=8, seed=0), tmp_path / "s", progress=False)
    record = next(r for r in Journal.load(tmp_path / "s" / "journal.jsonl").records
                  if r["name"] == "continued ema-start:hl-3")
    merged = merger.merge_many(np.asarray(record["coefficients"])[None])[0]
    for key, want in end.items():
        torch.testing.assert_close(merged[key], want, rtol=1e-5, atol=1e-6)


class _BrokenValidation(_Distance):
    def validation(self) -> _Distance:
        out = super().validation()
        out.score = lambda state: (_ for _ in ()).throw(RuntimeError("validation sampler failed"))
        return out


def test_when_every_validation_score_fails_the_search_best_is_exported_visibly(anchored, tmp_path) -> None:
    stack = anchored.stack
    target = stack.checkpoint(stack.K_window - 1)
    res = run_search(anchored, _BrokenValidation(target, target), SearchConfig(evals=20, seed=2, revalidate=3),
                     tmp_path, progress=False)
    reval = res.revalidation
    assert reval["picked"] is None and "every validation score failed" in reval["fallback"]
    assert np.array_equal(res.best, res.search_best)
