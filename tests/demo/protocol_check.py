"""The demo's protocol check: a recorder of every noise draw and feature space by demo stage, and what it finds."""

from __future__ import annotations

import torch

import lcsc.generate
import lcsc.objectives.generative
from lcsc import protocol
from lcsc.demo import run as demo_run
from lcsc.experiment import scoring as experiment_scoring
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.scoring import check_seed_separation
from lcsc.objectives.base import VALIDATION_SEED_OFFSET, noise_fingerprint

__all__ = ["NoiseRecorder", "protocol_violations"]


class NoiseRecorder:
    """Records the noise of every sampling run (as a fingerprint) with the demo stage it happened in and the
    protocol's decision context, every feature space built with its stage, and which finalist scores EMA* was chosen
    from."""

    def __init__(self, monkeypatch) -> None:
        self.phase, self.draws, self.grid_finalists, self.chosen_from = "other", [], [], []
        self.contexts, self.spaces = [], []
        for module in (lcsc.generate, lcsc.objectives.generative):
            monkeypatch.setattr(module, "draw_inputs", self._recording(module.draw_inputs))
        build = experiment_scoring.feature_space
        monkeypatch.setattr(experiment_scoring, "feature_space",
                            lambda name, *a, **kw: (self.spaces.append((self.phase, name)), build(name, *a, **kw))[1])
        monkeypatch.setattr(demo_run, "ema_grid_scores", self._phase("grid", demo_run.ema_grid_scores))
        monkeypatch.setattr(demo_run, "lcsc_search", self._phase("search", demo_run.lcsc_search))
        monkeypatch.setattr(demo_run, "lcsc_grad_search", self._phase("search", demo_run.lcsc_grad_search))
        self.seeds: list[tuple[str, int]] = []
        choice = demo_run.ema_star_choice
        monkeypatch.setattr(demo_run, "ema_star_choice", lambda cfg, s: (self.chosen_from.append(s), choice(cfg, s))[1])

    def _recording(self, fn):
        def draw(config, n, generator, **kw):
            g = torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator
            clone = torch.Generator()
            clone.set_state(g.get_state())
            self.draws.append((self.phase, noise_fingerprint(clone)))
            self.seeds.append((self.phase, clone.initial_seed()))
            self.contexts.append((self.phase, protocol.decision_context()))
            return fn(config, n, g, **kw)
        return draw

    def _phase(self, name: str, fn):
        def wrapped(run, cfg, *args, **kw):
            self.phase = name
            try:
                return fn(run, cfg, *args, **kw)
            finally:
                self.phase = "other"
                if name == "grid":
                    self.grid_finalists.extend(run.ema_finalists.values())
        return wrapped


def protocol_violations(recorder: NoiseRecorder, cfg: DemoConfig) -> list[str]:
    """What a demo run did against the protocol: decision stages (EMA* grid, LCSC search) sampling anything but
    search / validation noise, or outside a protocol decision context, or building a report-only space; held-out
    rows not on report noise; FD4 never scored."""
    noise, out = check_seed_separation(cfg), []
    validation = noise_fingerprint(torch.Generator().manual_seed(cfg.seed + VALIDATION_SEED_OFFSET))
    report = {noise_fingerprint(torch.Generator().manual_seed(s)) for s in protocol.held_out_seeds(cfg.seed, 8)}
    gradient = protocol.gradient_noise_seed(cfg.seed, 0)  # the gradient search's fresh-noise stream
    fresh = {i for i, (phase, seed) in enumerate(getattr(recorder, "seeds", [])) if seed == gradient}
    chosen_on = {fp for i, (phase, fp) in enumerate(recorder.draws) if phase in ("grid", "search") and i not in fresh}
    if not chosen_on or not chosen_on <= noise["search"] | {validation}:
        out.append("a decision stage sampled noise other than the search / validation noise")
    if chosen_on & report:
        out.append("a decision stage sampled report noise")
    if any(phase in ("grid", "search") and ctx is None for phase, ctx in recorder.contexts):
        out.append("a decision stage ran outside protocol.deciding()")
    if any(phase != "other" and name in protocol.REPORT_SPACES for phase, name in recorder.spaces):
        out.append("a decision stage built a report-only space")
    reported_on = {fp for phase, fp in recorder.draws if phase == "other"}
    if not noise["held_out"] <= reported_on or not noise["held_out"] <= report:
        out.append("the held-out rows are not on report noise")
    if ("other", "digits4") not in recorder.spaces:
        out.append("the report-only space FD4 was never scored")
    return out
