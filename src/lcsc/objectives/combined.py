"""``MeanObjective``: several generative metrics of the same samples, each divided by its value at the best initial
individual (the best anchor, when the search has anchors), averaged (``--objective mean:fd-digits,fd-digits2``) or
their worst (``max:…``: a candidate scores below 1 only when it beats the reference in every term, so the search
cannot buy one space with another). Searching two feature spaces at once keeps the search from fitting one space's
quirks; report on a third it never saw."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from lcsc.errors import ConfigError
from lcsc.objectives.generative import GenerativeObjective

__all__ = ["MeanObjective", "REDUCTIONS"]

REDUCTIONS = {"mean": np.mean, "max": np.max}


class MeanObjective:
    """Mean (or, with ``reduce="max"``, the largest) of ``terms`` (generative objectives on one model and one noise seed) normalised on the initial population.

    The search calls :meth:`calibrate` with the initial individuals' merged states before anything else: each term is
    scored on them, the best initial individual is the one with the lowest mean of terms divided by each term's best
    initial value, and that individual's term values become the fixed normalisers. Images are generated once per
    candidate and scored in every term's feature space.
    """

    direction = "minimize"

    def __init__(self, terms: list[GenerativeObjective], name: str | None = None,
                 normalizers: list[float] | None = None, reduce: str = "mean") -> None:
        if len(terms) < 2:
            raise ConfigError(f"a {reduce} objective needs at least two terms")
        if reduce not in REDUCTIONS:
            raise ConfigError(f"reduce={reduce!r}: choose one of {', '.join(REDUCTIONS)}")
        self.reduce = reduce
        first = terms[0]
        for t in terms[1:]:
            if (t.noise_seed, t.num_samples, t.nfe, t.solver) != (first.noise_seed, first.num_samples, first.nfe,
                                                                    first.solver):
                raise ConfigError("the terms of a mean objective must share noise seed, samples, NFE and solver")
        self.terms = list(terms)
        self.name = name or f"{reduce}:" + ",".join(t.name for t in terms)
        self.normalizers = list(normalizers) if normalizers is not None else None

    @property
    def role(self) -> str:
        return self.terms[0].role

    @property
    def noise_seed(self) -> int:
        return self.terms[0].noise_seed

    @property
    def held_out_seed(self) -> int:
        return self.terms[0].held_out_seed

    def noise_fingerprint(self) -> str:
        return self.terms[0].noise_fingerprint()

    @property
    def num_samples(self) -> int:
        return self.terms[0].num_samples

    @property
    def nfe(self) -> int:
        return self.terms[0].nfe

    def term_values(self, images: torch.Tensor) -> list[float]:
        return [t.score_images(images) for t in self.terms]

    def _combine(self, values: list[float]) -> float:
        if self.normalizers is None:
            raise ConfigError(f"{self.name}: not calibrated; the search calibrates it on the initial individuals")
        return float(REDUCTIONS[self.reduce]([v / n for v, n in zip(values, self.normalizers)]))

    @torch.no_grad()
    def calibrate(self, states: list[dict[str, torch.Tensor]], reference: list[int] | None = None) -> dict[str, Any]:
        """Fix the normalisers from the initial individuals: the term values of the best of ``reference`` (indices
        into ``states``, e.g. the anchors; default all), best by this objective's reduction of each term divided by
        its lowest value among them. Returns the normalisers, the raw values and the combined scores."""
        raw = np.array([self.term_values(x) for x in self.terms[0].samples_many(states)], dtype=np.float64)
        if not np.all(np.isfinite(raw)) or np.any(raw <= 0):
            raise ConfigError(f"{self.name}: an initial individual has a non-finite or non-positive term {raw.tolist()}")
        ref = list(reference) if reference else list(range(len(states)))
        ratios = raw[ref] / raw[ref].min(axis=0)
        best = ref[int(np.argmin(REDUCTIONS[self.reduce](ratios, axis=1)))]
        self.normalizers = raw[best].tolist()
        return {"normalizers": self.normalizers, "best_initial": best, "reference": ref, "raw": raw.tolist(),
                "scores": [self._combine(list(r)) for r in raw]}

    def load_calibration(self, state: dict[str, Any]) -> None:
        self.normalizers = list(state["normalizers"])

    @torch.no_grad()
    def score(self, state_dict: dict[str, torch.Tensor]) -> float:
        return self._combine(self.term_values(self.terms[0].samples(state_dict)))

    @torch.no_grad()
    def score_many(self, states: list[dict[str, torch.Tensor]]) -> list[float]:
        return [self._combine(self.term_values(x)) for x in self.terms[0].samples_many(states)]

    # The gradient search's interface: one image batch, every term's metric of it (combined by the search with
    # lcsc.objectives.differentiable.combine_terms: mean, or a smooth max for max:).
    def loss_inputs(self, generator: torch.Generator, n: int):
        return self.terms[0].loss_inputs(generator, n)

    def loss_terms(self, state_dict: dict[str, torch.Tensor], inputs, checkpoint: bool = True) -> list[torch.Tensor]:
        images = self.terms[0].loss_images(state_dict, inputs, checkpoint)
        return [t.loss_term(images) for t in self.terms]

    def with_samples(self, n: int) -> MeanObjective:
        other = copy.copy(self)
        other.terms = [t.with_samples(n) for t in self.terms]
        return other

    def held_out(self) -> MeanObjective:
        other = copy.copy(self)
        other.terms = [t.held_out() for t in self.terms]
        return other

    def validation(self) -> MeanObjective:
        other = copy.copy(self)
        other.terms = [t.validation() for t in self.terms]
        return other
