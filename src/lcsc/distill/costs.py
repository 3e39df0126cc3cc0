# The LCSC paper's cost accounting (Liu et al. 2024, Tab. 6): training vs search compute, in network passes and seconds.
"""Compute in network passes × samples: a training step of batch B costs ``TRAIN_PASSES[kind] × B`` forward-pass
equivalents (a backward pass counted as two forwards), a search evaluation costs samples × NFE forward passes.

Per sample and step: DM ε-loss 3 (forward + backward); CT 4 (the student's forward + backward, the stop-grad target's
forward); CD 6 (CT's 4 and two teacher forwards of one Heun step). The teacher and the student share a backbone size.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TRAIN_PASSES", "Cost", "run_cost", "paper_cd_cost", "break_even_iterations", "with_search_speedup"]

TRAIN_PASSES = {"dm": 3, "cm-ct": 4, "cm-cd": 6}


@dataclass(frozen=True)
class Cost:
    """Training and search compute of one run: passes (forward-pass equivalents × samples) and core-seconds."""

    train_passes: float
    search_passes: float
    train_core_s: float
    search_core_s: float

    @property
    def search_fraction_passes(self) -> float:
        """Search passes ÷ training passes."""
        return self.search_passes / self.train_passes

    @property
    def search_fraction_seconds(self) -> float:
        """Search core-seconds ÷ training core-seconds."""
        return self.search_core_s / self.train_core_s

    def to_dict(self) -> dict[str, float]:
        return {"train_passes": self.train_passes, "search_passes": self.search_passes,
                "train_core_s": self.train_core_s, "search_core_s": self.search_core_s,
                "search_fraction_passes": self.search_fraction_passes,
                "search_fraction_seconds": self.search_fraction_seconds}


def run_cost(kind: str, iterations: int, batch: int, train_core_s: float, searches: list[dict]) -> Cost:
    """``searches``: records with ``evaluations``, ``samples`` (per evaluation), ``nfe`` and ``core_s``."""
    train = TRAIN_PASSES[kind] * iterations * batch
    search = sum(s["evaluations"] * s["samples"] * s["nfe"] for s in searches)
    return Cost(float(train), float(search), float(train_core_s), float(sum(s["core_s"] for s in searches)))


def paper_cd_cost(iterations: int = 800_000, batch: int = 512, search_iterations: int = 2_000,
                  samples: int = 10_000, nfe: int = 1) -> Cost:
    """The paper's CIFAR-10 CD setting in the same units (Tab. 6: 800K × 512 training, 2K search iterations of 10K
    samples at 1 NFE); no seconds (the paper's hours are GPU-hours: 6.45 h search vs 640–818 h training)."""
    return Cost(float(TRAIN_PASSES["cm-cd"] * iterations * batch), float(search_iterations * samples * nfe),
                float("nan"), float("nan"))


def break_even_iterations(search_core_s: float, train_core_s_per_iter: float, fraction: float = 0.1) -> float:
    """The training length (iterations) at which a search of ``search_core_s`` costs ``fraction`` of training."""
    return search_core_s / (fraction * train_core_s_per_iter)


def with_search_speedup(crossing_images: float, lcsc_images: float, search_core_s: float,
                        ref_core_s_per_image: float) -> float:
    """The speed-up in images seen when the search's compute counts as training of the reference run:
    crossing ÷ (LCSC's images + the search's core-seconds in reference images)."""
    return crossing_images / (lcsc_images + search_core_s / ref_core_s_per_image)
