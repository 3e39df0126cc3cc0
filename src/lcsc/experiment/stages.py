"""The demo's stages: train with the recorder, choose EMA* on search noise, run LCSC, score rows on held-out noise."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from lcsc import protocol
from lcsc.checkpoints import CheckpointStack
from lcsc.data import ImageData
from lcsc.errors import ConfigError
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.scoring import HeldOutScore, Scorer
from lcsc.merge import PosthocEMA, StackMerger
from lcsc.models import ModelConfig, load_model
from lcsc.search import SearchResult, run_gradient_search, run_search, share_initial_population
from lcsc.search.runner import initial_count
from lcsc.training import ConsistencyConfig, OptimConfig, RecordConfig, TrainConfig, Trainer
from lcsc.training.ema import ema_name
from lcsc.training.log import read_log
from lcsc.training.phema import phema_name

__all__ = ["ModelRun", "SearchRun", "train_model", "train_pair", "parallel_training", "ema_grid_scores", "ema_star_choice", "candidate_names",
           "candidate_states", "ema_state_named", "ema_state_path", "lcsc_search", "train_seconds_at", "held_out_row", "demo_anchors",
           "star_spec", "shrunk", "lcsc_state", "lcsc_grad_search", "search_dir"]


@dataclass
class ModelRun:
    """One trained model of the demo: its folder, kind label, NFE and the time training took."""

    name: str
    run_dir: Path
    nfe: int
    train_s: float
    threads: float = 1.0  # mean torch threads training used (the search-time conversion counts core-seconds)
    ema_scores: dict[int, dict[str, float]] = field(default_factory=dict)  # point → EMA name → search-noise FD
    ema_finalists: dict[int, dict[str, float]] = field(default_factory=dict)  # point → finalist → full-sample score
    _posthoc: PosthocEMA | None = field(default=None, repr=False)

    @property
    def posthoc(self) -> PosthocEMA:
        """The run's post-hoc EMA (snapshots loaded once and kept)."""
        if self._posthoc is None:
            self._posthoc = PosthocEMA.open(self.run_dir)
        return self._posthoc


@dataclass
class SearchRun:
    point: int
    result: SearchResult
    merger: StackMerger
    seconds: float


def train_model(name: str, cfg: DemoConfig, out: Path, data: ImageData, teacher: Path | None = None,
                progress: bool = True, on_log=None) -> ModelRun:
    """Train the DM ("dm"), the CT CM ("cm-ct") or the CD CM ("cm-cd") with the recorder and the EMA grid."""
    kind = "dm" if name == "dm" else "cm"
    consistency = ConsistencyConfig(mode="cd", teacher=str(teacher), target_ema=cfg.cd_target_ema) \
        if name == "cm-cd" else None
    config = TrainConfig(
        model=ModelConfig(kind=kind, channels=cfg.channels), iterations=cfg.iterations, batch_size=cfg.batch_size,
        seed=cfg.seed + {"dm": 0, "cm-ct": 1, "cm-cd": 2}[name],
        optim=OptimConfig(lr=cfg.dm_lr if kind == "dm" else cfg.cm_lr),
        record=RecordConfig(window=cfg.window, interval=cfg.interval, ends=cfg.lcsc_points, ema_steps=cfg.points,
                            phema_sigma_rels=cfg.phema_sigma_rels, phema_every=cfg.phema_every),
        ema_half_lives=cfg.half_lives, consistency=consistency, device=cfg.device, log_every=cfg.interval,
        sample_nfe=cfg.dm_nfe if kind == "dm" else cfg.cm_nfe)
    trainer = Trainer(config, out / name, data=data, progress=progress)
    trainer.run(on_log=on_log)
    return ModelRun(name, out / name, cfg.dm_nfe if kind == "dm" else cfg.cm_nfe, train_seconds_at(out / name),
                    torch.get_num_threads())


def _train_worker(name: str, cfg: DemoConfig, out: Path) -> ModelRun:
    """One of the pair, on one thread from start to end: the thread count never depends on timing, so the weights
    are the same on every run (a model that switched thread counts when the other finished would change its
    floating-point reductions at a time-dependent step, and its FDs by several per cent from run to run)."""
    from lcsc.data import load_digits_data

    torch.set_num_threads(1)
    run = train_model(name, cfg, out, load_digits_data(), None, progress=False)
    run.threads = 1
    return run


def parallel_training(cfg: DemoConfig) -> bool:
    """Train the DM and the CT CM side by side, one thread each: on CPU with ≥ 2 threads the small models use two
    cores better apart (≈ 1.6× one thread each) than together (≈ 1.65× on two threads for one model at a time)."""
    return cfg.device == "cpu" and torch.get_num_threads() >= 2


def train_pair(cfg: DemoConfig, out: Path, progress: bool = True) -> dict[str, ModelRun]:
    """The DM and the CT CM in two spawned processes; a bar follows both logs. Errors are re-raised here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    names, ctx = ("dm", "cm-ct"), multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool, \
            tqdm(total=2 * cfg.iterations, desc="train dm ‖ cm-ct", disable=not progress) as bar:
        futures = {n: pool.submit(_train_worker, n, cfg, out) for n in names}
        while not all(f.done() for f in futures.values()):
            time.sleep(1.0)
            bar.n = sum(_logged_step(out / n) for n in names)
            bar.refresh()
        return {n: f.result() for n, f in futures.items()}


def _logged_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "log.jsonl").read_text().splitlines()
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def train_seconds_at(run_dir: Path, step: int | None = None) -> float:
    """Training wall time up to ``step`` (default: the end) from the loss log, summed over resumed segments."""
    total, last = 0.0, 0.0
    for rec in read_log(run_dir / "log.jsonl"):
        if step is not None and rec["step"] > step:
            break
        if rec["elapsed_s"] < last:  # a resumed segment restarts its clock
            total += last
        last = rec["elapsed_s"]
    return total + last


def ema_state_path(run: ModelRun, half_life: float, step: int) -> Path:
    """The online EMA snapshot file of ``half_life`` at ``step``."""
    return run.run_dir / "ema" / ema_name(half_life=half_life) / f"ema-{step:09d}.safetensors"


def ema_state(run: ModelRun, half_life: float, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(ema_state_path(run, half_life, step)))


def candidate_names(cfg: DemoConfig) -> tuple[list[str], list[str]]:
    """The two EMA families of the EMA* grid, each in increasing averaging length: online half-lives, post-hoc σ_rel."""
    return [ema_name(half_life=h) for h in cfg.half_lives], [phema_name(s) for s in cfg.sigma_rels]


def candidate_states(run: ModelRun, cfg: DemoConfig, point: int) -> dict[str, dict[str, torch.Tensor]]:
    """Every EMA* candidate's weights at ``point``: the online EMAs' snapshots and the post-hoc reconstructions (those
    of ``cfg.sigma_rels`` that the power-EMA snapshots can reconstruct at ``point``: early in a run, with few
    snapshots, some fall in gaps of the reconstructable range and are left out)."""
    states = {ema_name(half_life=h): ema_state(run, h, point) for h in cfg.half_lives}
    sigmas = [s for s in cfg.sigma_rels if _reconstructable(run.posthoc, point, s)]
    recon = run.posthoc.reconstruct_many(point, [{"sigma_rel": s} for s in sigmas])
    states.update(zip((phema_name(s) for s in sigmas), recon))
    return states


def _reconstructable(posthoc: PosthocEMA, point: int, sigma_rel: float) -> bool:
    try:
        posthoc.coefficients(point, sigma_rel=sigma_rel)
    except ConfigError:
        return False
    return True


def ema_state_named(run: ModelRun, name: str, point: int) -> dict[str, torch.Tensor]:
    """One candidate's weights by name (``hl-H`` online, ``sigma-S`` post-hoc)."""
    if name.startswith("hl-"):
        return ema_state(run, float(name.removeprefix("hl-")), point)
    return run.posthoc.reconstruct(point, sigma_rel=float(name.removeprefix("sigma-")))


def ema_grid_scores(run: ModelRun, cfg: DemoConfig, scorer: Scorer, point: int) -> dict[str, float]:
    """EMA* candidates at ``point`` (online EMAs and the post-hoc σ_rel grid; paper Table 10) raced on the search
    noise: every candidate on its first ``grid_samples`` samples (returned, and kept in ``run.ema_scores``), then
    the best ``grid_finalists`` on all ``search_samples`` (``run.ema_finalists``: EMA* is the lowest of those). A
    mean objective is calibrated on the candidates themselves
    (each term divided by its best candidate's value)."""
    with protocol.deciding(f"EMA* grid {run.name}@{point}"):
        model = load_model(run.run_dir / "last.safetensors", cfg.device)
        full = scorer.search_objective(model, run.nfe)
        states = candidate_states(run, cfg, point)
        scores = _score_states(full.with_samples(min(cfg.grid_samples, cfg.search_samples)), states)
        finalists = sorted(scores, key=scores.get)[:cfg.grid_finalists]
        run.ema_scores[point] = scores
        run.ema_finalists[point] = _score_states(full, {n: states[n] for n in finalists}) \
            if cfg.grid_samples < cfg.search_samples else {n: scores[n] for n in finalists}
    return scores


def _score_states(objective, states: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    names, values = list(states), list(states.values())
    scores = objective.calibrate(values)["scores"] if hasattr(objective, "calibrate") else \
        objective.score_many(values)
    return {n: float(v) for n, v in zip(names, scores)}


def ema_star_choice(cfg: DemoConfig, scores: dict[str, float]) -> tuple[str, bool]:
    """EMA* (the lowest of ``scores``: the finalists' full-sample scores) and whether it is interior to its family's
    grid (not its first or last value)."""
    best = min(scores, key=scores.get)
    family = next(f for f in candidate_names(cfg) if best in f)
    return best, 0 < family.index(best) < len(family) - 1


def star_spec(star: str) -> str:
    """The anchor spec of an EMA* name: ``hl-H`` → ``ema:hl-H`` (online), ``sigma-S`` → ``phema:S`` (post-hoc)."""
    return f"ema:{star}" if star.startswith("hl-") else f"phema:{float(star.removeprefix('sigma-')):g}"


def demo_anchors(run: ModelRun, cfg: DemoConfig, point: int, star: str, stack: CheckpointStack) -> list:
    """(Anchor, state) pairs: EMA* at the window's end, then the online EMAs of ``cfg.anchor_half_lives`` at the
    window's start. Equal weights are kept once (a window from step 0 starts every EMA at the initial weights)."""
    from lcsc.checkpoints.anchor_specs import resolve_anchors
    from lcsc.checkpoints.anchors import state_dict_sha256

    specs = [star_spec(star)] + [f"ema-start:{ema_name(half_life=h)}" for h in cfg.anchor_half_lives]
    window = run.run_dir / "windows" / str(point)
    out, seen = [], set()
    for spec in specs:
        for anchor, state in resolve_anchors([spec], window, stack):
            weights = state_dict_sha256(state)  # the weights alone (file hashes include metadata)
            if weights not in seen:
                seen.add(weights)
                out.append((anchor, state))
    return out


def lcsc_search(run: ModelRun, cfg: DemoConfig, scorer: Scorer, point: int, evals: int, out: Path,
                progress: bool = True, star: str | None = None) -> SearchRun:
    """LCSC (``cfg.search_*``: Algorithm 1 by default) on the window ending at ``point`` against the search objective
    on the search noise (resumable). With ``star`` (the EMA* name at ``point``) the search is anchored
    (:func:`demo_anchors`) and guarded on validation noise; without it, the window alone (the paper's search)."""
    stack = CheckpointStack.open(run.run_dir / "windows" / str(point), progress=False)
    if star is not None:
        stack = stack.with_anchors(demo_anchors(run, cfg, point, star, stack))
    merger = StackMerger(stack, device=cfg.device)
    objective = scorer.search_objective(load_model(stack.paths[-1], cfg.device), run.nfe)
    folder = search_dir(out, run.name, point, "alg1" if star is not None else "window")
    resume = (folder / "journal.jsonl").is_file()
    with protocol.deciding(f"LCSC search {run.name}@{point}"):
        result = run_search(merger, objective, cfg.search_config(evals, anchored=star is not None), folder,
                            resume=resume, progress=progress)
    return SearchRun(point, result, merger, float(result.wall_time_s))


def search_dir(out: Path, name: str, point: int, kind: str = "alg1", nfe: int | None = None) -> Path:
    """A demo search's folder: ``{name}-{point}-anchored`` (Alg. 1), ``{name}-{point}`` (window only, ``kind``
    "window"), ``{name}-{point}-grad`` (gradient; ``-nfe{N}`` when searched at another NFE than the model's)."""
    suffix = {"alg1": "-anchored", "window": "", "gradient": "-grad"}[kind]
    return out / "search" / (f"{name}-{point}{suffix}" + (f"-nfe{nfe}" if nfe is not None else ""))


def lcsc_grad_search(run: ModelRun, cfg: DemoConfig, scorer: Scorer, point: int, out: Path, progress: bool = True,
                     star: str | None = None, nfe: int | None = None) -> SearchRun:
    """Gradient LCSC (:func:`lcsc.search.run_gradient_search`, ``cfg.grad_config()``) on the window ending at
    ``point``, anchored like :func:`lcsc_search` (``star``: EMA* at ``point``) against the same objective and search
    noise, at the model's NFE or at ``nfe``. At the model's NFE it starts from the initial population the anchored
    Alg. 1 search already scored (the same individuals, objective and noise: its journal lines are reused, and
    their time counts in this search's seconds). Resumable; guarded on validation noise."""
    stack = CheckpointStack.open(run.run_dir / "windows" / str(point), progress=False)
    if star is not None:
        stack = stack.with_anchors(demo_anchors(run, cfg, point, star, stack))
    merger = StackMerger(stack, device=cfg.device)
    at = run.nfe if nfe is None else nfe
    objective = scorer.search_objective(load_model(stack.paths[-1], cfg.device), at)
    folder = search_dir(out, run.name, point, "gradient", None if at == run.nfe else at)
    config = cfg.search_config(1, anchored=True)
    if at == run.nfe:
        share_initial_population(search_dir(out, run.name, point), folder, initial_count(merger, config))
    with protocol.deciding(f"LCSC gradient search {run.name}@{point} NFE {at}"):
        result = run_gradient_search(merger, objective, config, cfg.grad_config(), folder,
                                     resume=(folder / "journal.jsonl").is_file(), progress=progress)
    return SearchRun(point, result, merger, float(result.wall_time_s))


def lcsc_state(search: SearchRun, initial: bool = False, a=None) -> dict[str, torch.Tensor]:
    """The search's export (or, with ``initial``, its best initial individual; or the coefficients ``a``)."""
    if a is None:
        a = search.result.best_initial if initial else search.result.best
    return search.merger.merge_many(np.asarray(a)[None])[0]


def shrunk(search: SearchRun, lam: float) -> np.ndarray:
    """λ of the way from the best anchor to the best on the search noise: a₀ + λ(a* − a₀)."""
    a0, a1 = np.asarray(search.result.best_anchor), np.asarray(search.result.search_best)
    return a0 + lam * (a1 - a0)


def held_out_row(run: ModelRun, cfg: DemoConfig, scorer: Scorer, state: dict[str, torch.Tensor],
                 nfe: int | None = None, full: bool = True) -> HeldOutScore:
    """Held-out scores of ``state`` at ``nfe`` (default: the model's); ``full=False`` skips KID and precision/recall."""
    model = load_model(run.run_dir / "last.safetensors", cfg.device)
    return scorer.held_out(model, state, run.nfe if nfe is None else nfe, full=full)
