"""Generative objectives: sample a merged DM/CM on fixed seeded noise, score the samples in a feature space.

``FDObjective`` (Fréchet distance in any feature space; ``FIDObjective`` is the Inception one) and
``KIDObjective`` implement the search's ``score(state_dict) -> float`` (lower is better). The sampling inputs
(noise, labels) are drawn once from a CPU generator on ``noise_seed`` and reused by every call; :meth:`held_out`
gives the same objective on another seed for reporting, :meth:`with_samples` the same objective on a prefix of the
same inputs (racing), and :meth:`score_many` scores a generation. Models come in as objects, features and
references from :mod:`lcsc.metrics`.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from lcsc.errors import ConfigError
from lcsc.generate import SamplingInputs, draw_inputs, generate, generate_many
from lcsc.generate_grad import generate_differentiable
from lcsc.metrics.differentiable import differentiable_features, frechet_distance_torch, kid_torch
from lcsc.metrics.features import FeatureExtractor
from lcsc.metrics.kid import kernel_inception_distance
from lcsc.metrics.reference import ReferenceSet
from lcsc.objectives.base import SeededObjective
from lcsc.precision import check_autocast

__all__ = ["GenerativeObjective", "FDObjective", "FIDObjective", "KIDObjective"]


class GenerativeObjective(SeededObjective):
    """Base: owns ``model`` (a DM or CM), loads each state into it, samples ``num_samples`` images at ``nfe``."""

    direction = "minimize"
    metric = ""

    def __init__(self, model: nn.Module, features: FeatureExtractor, reference: ReferenceSet, *,
                 num_samples: int = 1000, nfe: int | None = None, solver: str = "dpm-solver",
                 batch_size: int = 500, device: str | torch.device = "cpu", noise_seed: int = 0,
                 held_out_seed: int | None = None, name: str | None = None, batched: bool = False,
                 autocast: str | None = None) -> None:
        super().__init__(noise_seed, held_out_seed)
        self.autocast = check_autocast(autocast)  # "bf16": the network under bf16 autocast while sampling
        if num_samples < 2:
            raise ConfigError(f"num_samples={num_samples}: an objective needs at least 2 samples")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.features, self.reference = features, reference
        self.num_samples, self.solver, self.batch_size = int(num_samples), solver, batch_size
        self.nfe = int(nfe) if nfe else (20 if model.config.kind == "dm" else 1)
        self.name = name or f"{self.metric}_{features.name}@{self.num_samples}/nfe{self.nfe}"
        self.batched = batched
        self._inputs: SamplingInputs | None = None

    def inputs(self) -> SamplingInputs:
        """This objective's sampling inputs (drawn once per seed; a :meth:`with_samples` copy takes a prefix)."""
        if self._inputs is None:
            self._inputs = draw_inputs(self.model.config, self.num_samples, self.generator(), nfe=self.nfe,
                                       batch_size=self.batch_size)
        return self._inputs.prefix(self.num_samples) if len(self._inputs) != self.num_samples else self._inputs

    def with_samples(self, n: int) -> GenerativeObjective:
        """The same objective on the first ``n`` of its samples (the same noise: common random numbers)."""
        if not 2 <= n <= self.num_samples:
            raise ConfigError(f"with_samples({n}): must be between 2 and this objective's {self.num_samples}")
        self.inputs()
        other = copy.copy(self)
        other.num_samples = int(n)
        return other

    def _on_seed_change(self) -> None:
        self._inputs = None

    def samples(self, state_dict: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Images of ``state_dict`` (or the current weights) from this objective's fixed inputs."""
        if state_dict is not None:
            self.model.load_state_dict(state_dict)
        return generate(self.model, self.num_samples, None, nfe=self.nfe, solver=self.solver,
                        batch_size=self.batch_size, device=self.device, inputs=self.inputs(), autocast=self.autocast)

    def samples_many(self, states: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
        """Images of several states on the same inputs: one vmapped computation when ``batched``, else a loop."""
        if self.batched and len(states) > 1:
            return generate_many(self.model, states, self.inputs(), nfe=self.nfe, solver=self.solver,
                                 batch_size=self.batch_size * len(states), device=self.device,
                                 autocast=self.autocast)
        return [self.samples(s) for s in states]

    def score_images(self, images: torch.Tensor) -> float:
        """The metric of already generated images (inf when sampling diverged)."""
        if not torch.isfinite(images).all():
            return float("inf")
        return float(self._metric(self.features(images).numpy().astype(np.float64)))

    @torch.no_grad()
    def score(self, state_dict: dict[str, torch.Tensor]) -> float:
        return self.score_images(self.samples(state_dict))

    # The gradient search's interface (lcsc.search.gradient): fresh inputs each step, images with autograd on, and
    # the metric as a differentiable tensor (lcsc.metrics.differentiable).
    reduce = "single"

    def loss_inputs(self, generator: torch.Generator, n: int) -> SamplingInputs:
        """``n`` fresh sampling inputs drawn from ``generator`` (the gradient search's own noise stream)."""
        return draw_inputs(self.model.config, n, generator, nfe=self.nfe, batch_size=n)

    def loss_images(self, state_dict: dict[str, torch.Tensor], inputs: SamplingInputs,
                    checkpoint: bool = True) -> torch.Tensor:
        """Images of ``state_dict`` (tensors that may require grad) on ``inputs``, differentiable in the weights."""
        return generate_differentiable(self.model, state_dict, inputs, nfe=self.nfe, solver=self.solver,
                                       device=self.device, checkpoint=checkpoint, autocast=self.autocast)

    def loss_term(self, images: torch.Tensor) -> torch.Tensor:
        """This objective's metric of ``images`` as a differentiable float64 scalar (the value :meth:`score_images`
        gives, up to float rounding)."""
        return self._metric_torch(differentiable_features(self.features, images))

    def loss_terms(self, state_dict: dict[str, torch.Tensor], inputs: SamplingInputs,
                   checkpoint: bool = True) -> list[torch.Tensor]:
        """[the metric] of ``state_dict``'s images on ``inputs``, differentiable in the weights."""
        return [self.loss_term(self.loss_images(state_dict, inputs, checkpoint))]

    def _metric_torch(self, feats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def score_many(self, states: list[dict[str, torch.Tensor]]) -> list[float]:
        return [self.score_images(x) for x in self.samples_many(states)]

    def _metric(self, feats: np.ndarray) -> float:
        raise NotImplementedError


class FDObjective(GenerativeObjective):
    """Fréchet distance between the samples' and the reference's features (fast: Σ_ref^{1/2} precomputed)."""

    metric = "fd"

    def _metric(self, feats: np.ndarray) -> float:
        return self.reference.frechet.distance_features(feats)

    def _metric_torch(self, feats: torch.Tensor) -> torch.Tensor:
        return frechet_distance_torch(feats, self.reference.frechet)


class FIDObjective(FDObjective):
    """FD in the standard Inception feature space (pass ``InceptionFeatures`` and its reference set)."""

    metric = "fid"

    def __init__(self, model: nn.Module, features: FeatureExtractor, reference: ReferenceSet, **kw) -> None:
        if features.name != "inception":
            raise ConfigError(f"FIDObjective needs Inception features, got {features.name!r} (use FDObjective)")
        super().__init__(model, features, reference, **kw)


class KIDObjective(GenerativeObjective):
    """Kernel Inception Distance (unbiased MMD², cubic kernel) in the given feature space; subsets fixed by seed.

    The score is the raw MMD² (not ×10³): the search is invariant to the scale, and journals and the calibrated
    mean's normalisers store scores, so a resumed search must keep the units it started with. Reports scale it
    (``lcsc search`` prints the best as KID×10³ with its feature space).
    """

    metric = "kid"

    def __init__(self, *args, kid_subsets: int = 50, kid_subset_size: int = 1000, **kw) -> None:
        super().__init__(*args, **kw)
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size

    def _metric(self, feats: np.ndarray) -> float:
        mean, _ = kernel_inception_distance(self.reference.features, feats, self.kid_subsets, self.kid_subset_size,
                                            seed=0)
        return mean

    def _metric_torch(self, feats: torch.Tensor) -> torch.Tensor:
        return kid_torch(feats, self.reference.features, self.kid_subsets, self.kid_subset_size, seed=0)
