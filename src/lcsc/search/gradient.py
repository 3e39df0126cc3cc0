# Gradient LCSC (ours; ARCHITECTURE "gradient"): Adam on Σa = 1 through the sampler, fresh noise each step.
"""``run_gradient_search``: learn the coefficients of θ(a) = Σₖ aₖθₖ by gradient descent on a differentiable sample
metric, instead of Algorithm 1's black-box evolution.

1. The initial population (anchors alone, continued EMAs, the EMA grid) is scored on the search noise exactly as
   :func:`lcsc.search.run_search` scores it (its ``journal.jsonl``, calibration included); the best is the start a₀.
2. Each step: a = a₀ + (u − mean u) (Σa = 1 exactly), θ = aᵀS (one pass), ``batch_size`` images from fresh noise
   (the gradient noise family, :func:`lcsc.protocol.gradient_noise_seed`) with autograd on, the objective's
   differentiable terms divided by their values at step 0 and combined (mean, or a smooth max for ``max:``), one
   backward pass to ∂L/∂θ and one pass over the stack to ∂L/∂a; Adam on u with a cosine-decayed learning rate.
   Every step is journalled in ``gradient.jsonl`` (coefficients, loss, Adam state, the generator's state), so a
   killed search resumes to the journal and export an uninterrupted one writes.
3. The guard: the last iterate, the average of the tail iterates and the best anchor (the start, without anchors)
   are scored on validation noise; the best there is exported (the anchor itself when nothing beats it).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lcsc.atomic import remove_stale_temps
from lcsc.errors import ConfigError
from lcsc.objectives import combine_terms
from lcsc.objectives.base import check_noise_separation
from lcsc.protocol import gradient_noise_seed
from lcsc.search.config import SearchConfig
from lcsc.search.evaluator import _safe_score, coefficient_hash, objective_summary
from lcsc.search.grad_config import GradConfig
from lcsc.search.grad_state import GradState, coefficients_of
from lcsc.search.hyperplane import exact_sum_to_one
from lcsc.search.journal import Journal
from lcsc.search.runner import SearchResult, initial_count, run_search

__all__ = ["run_gradient_search", "check_differentiable", "share_initial_population", "guard_finalists",
           "GRADIENT_JOURNAL"]

GRADIENT_JOURNAL = "gradient.jsonl"


def check_differentiable(objective: Any, name: str | None = None) -> None:
    """Refuse an objective the gradient search cannot differentiate (one line: why, and what works)."""
    if hasattr(objective, "loss_terms") or callable(getattr(objective, "loss", None)):
        if getattr(objective, "direction", "minimize") != "minimize":
            raise ConfigError("the gradient search minimises; a maximised objective has no differentiable loss here")
        return
    label = name or getattr(objective, "name", type(objective).__name__)
    raise ConfigError(f"objective {label!r} has no gradient: --optimizer grad needs a built-in objective (fid, "
                      "fd-SPACE, kid-SPACE, mean:/max: of them) or an objective object with a differentiable "
                      "loss(state_dict, generator, batch_size) -> scalar tensor; use --optimizer alg1 for a "
                      "black-box score")


def _terms(objective: Any, state: dict, generator: torch.Generator, grad: GradConfig) -> list[torch.Tensor]:
    if hasattr(objective, "loss_terms"):
        inputs = objective.loss_inputs(generator, grad.batch_size)
        return list(objective.loss_terms(state, inputs, checkpoint=grad.checkpointing))
    return [objective.loss(state, generator, grad.batch_size)]


def _stream(objective: Any, grad: GradConfig) -> tuple[int, torch.Generator]:
    seed = gradient_noise_seed(int(getattr(objective, "noise_seed", 0)), grad.seed)
    return seed, torch.Generator(device="cpu").manual_seed(seed)


def _header(merger, objective, grad: GradConfig, a0: np.ndarray, seed: int) -> dict[str, Any]:
    return {"kind": "gradient", "steps": list(merger.steps), "hashes": list(merger.hashes), "G": merger.G,
            "K": merger.K, "grad": grad.settings(), "start": coefficient_hash(a0), "noise_stream_seed": seed,
            "objective": objective_summary(objective)}


def _open(path: Path, header: dict, resume: bool) -> tuple[Journal, GradState | None, list[float] | None]:
    """The gradient journal (new, or resumed after checking it belongs to this search) and its last state."""
    if not resume or not path.is_file():
        return Journal.create(path, header), None, None
    journal = Journal.load(path)
    for key in ("steps", "hashes", "G", "K", "grad", "start", "noise_stream_seed"):
        if journal.header.get(key) != header[key]:
            raise ConfigError(f"{path}: cannot resume with a different {key} ({journal.header.get(key)!r} in the "
                              f"journal, {header[key]!r} now); resume with the journal's settings or start a new "
                              "folder")
    steps = [m for m in journal.meta if m["type"] == "step"]
    norms = journal.find_meta("normalizers")
    return journal, GradState.from_json(steps[-1]["state"]) if steps else None, \
        None if norms is None else list(norms["values"])


def _step(merger, objective, grad: GradConfig, a: np.ndarray, generator, normalizers, reduce: str):
    """One loss and its gradient with respect to a (G, K); normalizers None: taken from this step's terms."""
    theta = merger.merge_vector(a).detach().requires_grad_(True)
    terms = _terms(objective, merger.state_dict(theta), generator, grad)
    values = [float(t.detach()) for t in terms]
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"the loss terms are not finite at this step ({values}); sampling diverged — lower --lr")
    normalizers = normalizers or [abs(v) if v != 0 else 1.0 for v in values]
    loss = combine_terms(terms, normalizers, reduce, grad.temperature)
    loss.backward()
    return float(loss.detach()), values, normalizers, merger.project(theta.grad)


def _loop(merger, objective, grad: GradConfig, a0: np.ndarray, journal: Journal, state: GradState,
          generator: torch.Generator, normalizers, bar, on_event) -> str:
    """Steps from ``state.step`` to ``grad.steps``; returns what stopped them."""
    reduce, t0, start_elapsed = getattr(objective, "reduce", "single"), time.time(), state.elapsed_s
    u, opt = state.optimizer(grad.lr)
    for t in range(state.step, grad.steps):
        if grad.max_time is not None and start_elapsed + time.time() - t0 > grad.max_time:
            return "max_time"
        t_step = time.time()
        a = coefficients_of(a0, u.detach().numpy())
        loss, values, norms, g_a = _step(merger, objective, grad, a, generator, normalizers, reduce)
        if normalizers is None:
            normalizers = norms
            journal.append_meta("normalizers", {"values": normalizers, "reduce": reduce})
        u.grad = torch.from_numpy(g_a - g_a.mean(axis=1, keepdims=True))  # ∂a/∂u = I − 11ᵀ/K per group
        for group in opt.param_groups:
            group["lr"] = grad.lr_at(t)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state.capture(u, opt, generator)
        a_next = coefficients_of(a0, state.u)
        if t >= grad.average_start():
            state.avg_sum, state.avg_n = state.avg_sum + a_next, state.avg_n + 1
        state.step, state.samples = t + 1, state.samples + grad.batch_size
        state.elapsed_s = start_elapsed + time.time() - t0
        journal.append_meta("step", {"step": t, "loss": loss, "terms": values, "lr": grad.lr_at(t),
                                     "a": a_next.tolist(), "grad_norm": float(np.linalg.norm(g_a)),
                                     "state": state.to_json()})
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if t == 0 or t == 4:
            per = time.time() - t_step
            on_event("estimate", {"generation": f"step {t + 1}", "seconds_per_eval": per,
                                  "evaluations_left": grad.steps - t - 1, "total_s": per * (grad.steps - t - 1)})
    return "steps"


def _finalists(base: SearchResult, a0: np.ndarray, state: GradState) -> dict[str, np.ndarray]:
    """The guard's finalists, distinct by content: last iterate, averaged iterate, best anchor (or the start)."""
    if base.best_anchor is not None:
        anchor = (base.best_anchor_name or "best anchor", np.asarray(base.best_anchor).reshape(a0.shape))
    else:
        anchor = (f"start ({base.best_initial_name})", a0)
    return guard_finalists(a0, state.u, state.avg_sum, state.avg_n, anchor)


def guard_finalists(a0: np.ndarray, u: np.ndarray, avg_sum: np.ndarray, avg_n: int,
                    anchor: tuple[str, np.ndarray]) -> dict[str, np.ndarray]:
    """name → coefficients of the guard's finalists, distinct by content: the last iterate (a0 and ``u``), the
    average of the tail iterates (``avg_sum`` / ``avg_n``; the last iterate when none), and ``anchor`` (name, a)."""
    last = coefficients_of(a0, u)
    avg = exact_sum_to_one(avg_sum / avg_n) if avg_n else last
    out: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for name, a in (("last iterate", last), ("averaged iterate", avg), anchor):
        if coefficient_hash(a) not in seen:
            seen.add(coefficient_hash(a))
            out[name] = a
    return out


def _guard(merger, objective, journal: Journal, finalists: dict[str, np.ndarray], anchor_name: str | None) -> dict:
    """Score the finalists on validation noise (journalled; a resume reuses it) and pick the lowest."""
    hashes = [coefficient_hash(a) for a in finalists.values()]
    saved = next((m for m in journal.meta if m["type"] == "validation" and m["hashes"] == hashes), None)
    if saved is not None:
        return saved
    val = objective.validation() if hasattr(objective, "validation") else None
    if val is None:
        scores = [None] * len(finalists)
    else:
        states = merger.merge_many(np.stack([a.reshape(1, -1) for a in finalists.values()]).reshape(
            len(finalists), merger.G, merger.K))
        scores = [_safe_score(val, s)[0] for s in states]
    valid = [i for i, v in enumerate(scores) if v is not None]
    names = list(finalists)
    pick = min(valid, key=lambda i: (scores[i], i)) if valid else 0
    record = {"names": names, "hashes": hashes, "scores": scores, "picked": names[pick],
              "validation_seed": getattr(val, "noise_seed", None),
              "samples": (getattr(val, "num_samples", 0) or 0) * len(names) if val is not None else 0,
              "exported_anchor": anchor_name is not None and names[pick] == anchor_name,
              "fallback": None if valid else "no validation score (no validation() or every score failed); exported "
                                             "the last iterate"}
    journal.append_meta("validation", record)
    return {"type": "validation", **record}


def share_initial_population(source_dir: str | Path, out_dir: str | Path, count: int) -> bool:
    """Start a gradient search in ``out_dir`` from the initial population an Algorithm 1 search in ``source_dir``
    already scored on the same stack, objective and noise: its header, calibration and first ``count`` records are
    copied to ``out_dir/journal.jsonl``, which ``run_gradient_search(..., resume=True)`` then resumes (its resume
    checks still refuse another stack, config or objective). Returns False (nothing written) when ``out_dir``
    already has a journal or the source has not scored ``count`` initial individuals."""
    src, dst = Path(source_dir) / "journal.jsonl", Path(out_dir) / "journal.jsonl"
    if dst.exists() or not src.is_file():
        return False
    journal = Journal.load(src)
    initial = [r for r in journal.records if r.get("generation") == 0][:count]
    if len(initial) < count:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shared = Journal.create(dst, {k: v for k, v in journal.header.items() if k != "type"})
    for m in journal.meta:
        if m["type"] == "calibration":
            shared.append_meta("calibration", {k: v for k, v in m.items() if k != "type"})
    for r in initial:
        shared.append(r)
    return True


def _initial_phase(merger, objective, config: SearchConfig, out: Path, initial, resume: bool, progress: bool,
                   on_event) -> SearchResult:
    """The initial population on the search noise, as Algorithm 1 scores it (``journal.jsonl``)."""
    n = initial_count(merger, config, initial)
    init_cfg = dataclasses.replace(config, evals=n, revalidate=0, shrink=1.0, racing=False)

    def forward(kind: str, info: dict) -> None:  # only "ready": the population's own estimates would mislead
        if kind == "ready":
            on_event(kind, info)

    return run_search(merger, objective, init_cfg, out, initial=initial,
                      resume=resume and (out / "journal.jsonl").is_file(), progress=progress, on_event=forward)


def run_gradient_search(merger: Any, objective: Any, config: SearchConfig, grad: GradConfig, out_dir: str | Path, *,
                        initial: dict[str, np.ndarray] | None = None, resume: bool = False, progress: bool = True,
                        on_event: Callable[[str, dict], None] | None = None) -> SearchResult:
    """Gradient LCSC on ``merger``'s rows against ``objective``'s differentiable loss; journals in ``out_dir``.

    ``config`` sets the initial population (half-lives, interval, anchors come with the merger); ``grad`` the
    steps. ``merger`` needs ``merge_vector``, ``state_dict`` and ``project`` (:class:`lcsc.merge.StackMerger`).
    Returns a :class:`SearchResult` whose ``best`` is the guard's pick and whose ``gradient`` holds the record."""
    check_differentiable(objective)
    if getattr(objective, "role", "search") != "search":
        raise ConfigError("refusing to search with a held-out objective: held-out noise is for reporting only")
    check_noise_separation(objective)
    out, emit = Path(out_dir), on_event or (lambda *_: None)
    if not resume:
        Journal.check_new(out / GRADIENT_JOURNAL)
    base = _initial_phase(merger, objective, config, out, initial, resume, progress, emit)
    a0 = np.asarray(base.search_best, dtype=np.float64).reshape(merger.G, merger.K)
    seed, generator = _stream(objective, grad)
    journal, state, normalizers = _open(out / GRADIENT_JOURNAL, _header(merger, objective, grad, a0, seed), resume)
    remove_stale_temps(out)
    state = state or GradState.fresh(a0.shape, generator)
    state.restore_generator(generator)
    bar = tqdm(total=grad.steps, initial=state.step, desc="LCSC gradient", unit="step", disable=not progress)
    try:
        stopped = _loop(merger, objective, grad, a0, journal, state, generator, normalizers, bar, emit) \
            if state.step < grad.steps else "steps"
    finally:
        bar.close()
    anchor_name = base.best_anchor_name if base.best_anchor is not None else None
    finalists = _finalists(base, a0, state)
    guard = _guard(merger, objective, journal, finalists, anchor_name)
    return _result(base, journal, state, finalists, guard, grad, seed, stopped)


def _result(base: SearchResult, journal: Journal, state: GradState, finalists: dict[str, np.ndarray], guard: dict,
            grad: GradConfig, seed: int, stopped: str) -> SearchResult:
    steps = [m for m in journal.meta if m["type"] == "step"]
    picked = guard["picked"]
    record = {"steps_done": state.step, "stream_seed": seed, "settings": dataclasses.asdict(grad),
              "losses": [m["loss"] for m in steps], "terms": [m["terms"] for m in steps],
              "normalizers": (journal.find_meta("normalizers") or {}).get("values"), "guard": guard,
              "start": base.best_initial_name, "samples": state.samples, "elapsed_s": state.elapsed_s}
    scores = dict(zip(guard["names"], guard["scores"]))
    return dataclasses.replace(
        base, best=finalists[picked], best_score=scores[picked] if scores[picked] is not None else math.nan,
        best_index=-1, best_name=picked, evaluations=base.evaluations + state.step,
        objective_calls=base.objective_calls + state.step + len(finalists), stopped=stopped,
        history=[(i + 1, m["loss"]) for i, m in enumerate(steps)], wall_time_s=base.wall_time_s + state.elapsed_s,
        samples=base.samples + state.samples + guard["samples"],
        optimizer={"name": "grad", **grad.settings(), "steps": grad.steps},
        search_best=finalists["last iterate"], revalidation=None, gradient=record)
