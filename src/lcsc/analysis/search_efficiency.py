# Equal-budget comparison of LCSC coefficient searches (Liu et al., Algorithm 1 vs CMA-ES, structured spaces, racing).
"""One search run of the search-efficiency benchmark: search a demo window, then score its best-so-far individual at
several budgets on held-out noise in every decision space (searched or not), next to EMA*.

A *job* is (training seed, model, method, search seed). Its search noise is the training seed's (as in the demo);
the search seed only drives the optimiser. The benchmark decides (which method, which default objective), so it runs
on decision seeds only and its held-out noise is *check* noise, never the demo's report noise (:mod:`lcsc.protocol`);
the report-only space FD4 is never built. Its judge is the demo's :class:`~lcsc.experiment.scoring.Scorer`, and its EMA*
is the demo's (:func:`lcsc.experiment.stages.ema_grid_scores`: online and post-hoc EMAs raced on the search noise with
the demo's default objective). Results are plain dicts written as JSON, so jobs are resumable and can run in
separate processes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lcsc import protocol
from lcsc.checkpoints import CheckpointStack
from lcsc.data import load_digits_data
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.scoring import Scorer
from lcsc.merge import StackMerger
from lcsc.models import load_model
from lcsc.objectives import MeanObjective
from lcsc.objectives.base import VALIDATION_SEED_OFFSET, direction_sign
from lcsc.search import SearchConfig, run_search
from lcsc.search.journal import Journal
from lcsc.search.ranking import FULL

__all__ = ["Method", "METHODS", "SPACES", "scorer_for", "best_so_far", "run_job", "ema_star_job", "posthoc_job"]

SPACES = protocol.DECISION_SPACES  # the report-only FD4 is never scored here


@dataclass(frozen=True)
class Method:
    """A search method: optimiser, coefficient space, racing, objective (feature spaces it may see)."""

    name: str
    optimizer: str = "alg1"
    space: str = "full"
    racing: bool = False
    objective: tuple[str, ...] = ("digits",)  # one space: FD there; several: MeanObjective over them
    reduce: str = "mean"  # several spaces: their calibrated "mean" or "max" (worst)
    samples_factor: int = 1  # full-count samples = factor × base (racing at 1/(4·factor) keeps the cost per eval)

    def search_config(self, evals: int, seed: int) -> SearchConfig:
        race_fraction = 0.25 / self.samples_factor if self.racing else 0.25
        return SearchConfig(evals=evals, seed=seed, optimizer=self.optimizer, space=self.space, racing=self.racing,
                            race_fraction=race_fraction)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("alg1"),
    Method("alg1-racing", racing=True),
    Method("sep-cmaes", optimizer="sep-cmaes"),
    Method("cmaes-ema8", optimizer="cmaes", space="ema-basis:8"),
    Method("alg1-mean12", objective=("digits", "digits2")),
    Method("alg1-max12", objective=("digits", "digits2"), reduce="max"),
    Method("sep-cmaes-mean12-race", optimizer="sep-cmaes", racing=True, objective=("digits", "digits2")),
    Method("alg1-race4x", racing=True, samples_factor=4),
)}


def scorer_for(demo: DemoConfig) -> Scorer:
    """The demo's Scorer on check noise (``held_out_noise="decision"``) for decision seed ``demo.seed``."""
    protocol.check_training_seed(demo.seed, "the search-efficiency benchmark")
    return Scorer(dataclasses.replace(demo, held_out_noise="decision"), load_digits_data())


def _objective(scorer: Scorer, method: Method, model, samples: int, nfe: int, seed: int):
    n = samples * method.samples_factor
    terms = [scorer.fd(s, model, n, nfe, seed) for s in method.objective]
    return terms[0] if len(terms) == 1 else MeanObjective(terms, reduce=method.reduce)


def _check_seeds(train_seed: int, count: int) -> list[int]:
    return list(protocol.held_out_seeds(train_seed, count, "decision"))


def best_so_far(journal: Journal, budgets: list[int], direction: str = "minimize") -> list[dict[str, Any]]:
    """At each budget b (candidates), the best full-count individual among the first b and the samples spent."""
    sign = direction_sign(direction)
    out = []
    for b in budgets:
        recs = [r for r in journal.records if r["candidate"] < b]
        full = [r for r in recs if r["stage"] == FULL and r["status"] != "failed"]
        if not full or max(r["candidate"] for r in recs) < b - 1:
            continue  # the run stopped before this budget
        best = min(full, key=lambda r: (sign * r["score"], r["candidate"]))
        samples = sum(r.get("samples") or 0 for r in recs if r["status"] != "cached")
        out.append({"evals": b, "samples": samples, "score": best["score"], "candidate": best["candidate"],
                    "hash": best["hash"], "coefficients": best["coefficients"]})
    return out


def _window(cache: Path, train_seed: int, model: str, demo: DemoConfig):
    run_dir = cache / f"demo-seed{train_seed}" / model
    stack = CheckpointStack.open(run_dir / "windows" / str(demo.iterations), progress=False)
    return run_dir, stack


def run_job(scorer: Scorer, cache: Path, work: Path, demo: DemoConfig, train_seed: int, model: str, method: Method,
            search_seed: int, evals: int, grid: list[int], eval_seeds: int) -> dict[str, Any]:
    """Search one window with ``method``; score the best-so-far at every budget of ``grid`` (≤ evals)."""
    run_dir, stack = _window(cache, train_seed, model, demo)
    merger = StackMerger(stack, device=demo.device)
    net = load_model(stack.paths[-1], demo.device)
    nfe = demo.dm_nfe if model == "dm" else demo.cm_nfe
    objective = _objective(scorer, method, net, demo.search_samples, nfe, train_seed)
    out = work / f"seed{train_seed}-{model}-{method.name}-s{search_seed}"
    resume = (out / "journal.jsonl").is_file()
    with protocol.deciding(f"search-efficiency {out.name}"):
        result = run_search(merger, objective, method.search_config(evals, search_seed), out, resume=resume,
                            progress=False)
    journal = Journal.load(out / "journal.jsonl")
    n_init = len(result.init_scores)
    points = best_so_far(journal, sorted({n_init, *[b for b in grid if b <= evals], evals}))
    seeds, cache_scores = _check_seeds(train_seed, eval_seeds), {}
    for p in points:
        if p["hash"] not in cache_scores:
            state = merger.merge_many(np.asarray(p["coefficients"], dtype=np.float64)[None])[0]
            with protocol.deciding(f"search-efficiency {out.name} held-out"):
                held = scorer.space_scores(net, state, nfe, seeds, demo.eval_samples)
                search = scorer.space_scores(net, state, nfe, [train_seed], demo.search_samples)
            cache_scores[p["hash"]] = {"held_out": held, "search": search}
        p.update(cache_scores[p["hash"]])
        p["init"] = p["evals"] == n_init
        del p["coefficients"]
    return {"train_seed": train_seed, "model": model, "method": method.name, "search_seed": search_seed,
            "held_out_noise": "decision", "spaces": list(SPACES), "method_spec": asdict(method), "evals": result.evaluations, "samples": result.samples,
            "wall_time_s": result.wall_time_s, "stopped": result.stopped, "points": points,
            "best_coefficients": np.asarray(result.best).tolist(), "coefficient_abs_sum": float(np.abs(result.best).sum())}


def ema_star_job(scorer: Scorer, cache: Path, demo: DemoConfig, train_seed: int, model: str,
                 eval_seeds: int) -> dict[str, Any]:
    """EMA* at the window's end: the demo's (online and post-hoc EMAs raced on the search noise with the demo's
    search objective, :func:`lcsc.experiment.stages.ema_grid_scores`), scored like a search on check noise."""
    from lcsc.experiment.stages import ModelRun, ema_grid_scores, ema_star_choice, ema_state_named

    run = ModelRun(model, cache / f"demo-seed{train_seed}" / model, demo.dm_nfe if model == "dm" else demo.cm_nfe, 0.0)
    grid = ema_grid_scores(run, demo, scorer, demo.iterations)
    best, _ = ema_star_choice(demo, run.ema_finalists[demo.iterations])
    net = load_model(run.run_dir / "last.safetensors", demo.device)
    with protocol.deciding(f"search-efficiency EMA* seed{train_seed}-{model} held-out"):
        held = scorer.space_scores(net, ema_state_named(run, best, demo.iterations), run.nfe,
                                   _check_seeds(train_seed, eval_seeds), demo.eval_samples)
    return {"train_seed": train_seed, "model": model, "ema_star": best, "ema_star_source": "lcsc.demo (online + "
            "post-hoc, raced on search noise)", "search_grid": grid, "held_out": held, "held_out_noise": "decision",
            "spaces": list(SPACES)}


def posthoc_job(scorer: Scorer, cache: Path, work: Path, demo: DemoConfig, train_seed: int, model: str,
                method: Method, search_seed: int, eval_seeds: int, shrink: float = 0.5, top: int = 5) -> dict[str, Any]:
    """Two cheap remedies applied to a finished search, scored like it (held-out, every space):

    - ``shrink``: a = a₀ + λ(a* − a₀), halfway from the best initial individual a₀ to the best a* (λ = 0.5);
    - ``select2``: among the ``top`` best full-count individuals, the one with the lowest *search-noise* FD_digits2
      (digits2 is then a searched space, so only digits3 stays unseen);
    - ``revalidate``: among the same ``top``, the one with the lowest FD_digits on a *validation* noise seed (neither
      the search's nor a held-out one): a second noise draw, not a second space, so digits2 and digits3 stay unseen.
    """
    run_dir, stack = _window(cache, train_seed, model, demo)
    merger = StackMerger(stack, device=demo.device)
    net = load_model(stack.paths[-1], demo.device)
    nfe = demo.dm_nfe if model == "dm" else demo.cm_nfe
    journal = Journal.load(work / f"seed{train_seed}-{model}-{method.name}-s{search_seed}" / "journal.jsonl")
    full = sorted((r for r in journal.records if r["stage"] == FULL and r["status"] != "failed"),
                  key=lambda r: (r["score"], r["candidate"]))
    init = min((r for r in full if r["generation"] == 0), key=lambda r: (r["score"], r["candidate"]))
    a0, best = np.asarray(init["coefficients"]), np.asarray(full[0]["coefficients"])
    unique = list({r["hash"]: r for r in reversed(full)}.values())[::-1][:top]
    states = merger.merge_many(np.stack([a0 + shrink * (best - a0)] + [np.asarray(r["coefficients"]) for r in unique]))
    with protocol.deciding(f"search-efficiency remedies seed{train_seed}-{model}-{method.name}"):
        second = [scorer.space_scores(net, s, nfe, [train_seed], demo.search_samples)["digits2"] for s in states[1:]]
        valid = [scorer.space_scores(net, s, nfe, [VALIDATION_SEED_OFFSET + train_seed], demo.search_samples)
                 ["digits"] for s in states[1:]]
        pick, vpick = int(np.argmin(second)), int(np.argmin(valid))
        seeds = _check_seeds(train_seed, eval_seeds)

        def held(i: int) -> dict[str, float]:
            return scorer.space_scores(net, states[i], nfe, seeds, demo.eval_samples)

        return {"train_seed": train_seed, "model": model, "method": method.name, "search_seed": search_seed,
                "held_out_noise": "decision", "spaces": list(SPACES),
                "shrink": {"lambda": shrink, "held_out": held(0)},
                "select2": {"top": top, "picked_rank": pick, "search_digits2": second, "held_out": held(1 + pick)},
                "revalidate": {"top": top, "picked_rank": vpick, "validation_digits": valid,
                               "held_out": held(1 + vpick)}}
