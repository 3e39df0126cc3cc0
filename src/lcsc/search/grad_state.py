"""The gradient search's state between steps (coefficients, Adam moments, the noise stream, the running average),
as JSON-safe journal records that restore it exactly (floats round-trip through JSON; the generator state as bytes)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import torch

from lcsc.search.hyperplane import exact_sum_to_one

__all__ = ["GradState", "coefficients_of"]


def coefficients_of(a0: np.ndarray, u: np.ndarray) -> np.ndarray:
    """a = a₀ + (u − mean u) per group, with every row summing to exactly 1 (Σa₀ = 1; the centred u sums to 0)."""
    return exact_sum_to_one(a0 + (u - u.mean(axis=1, keepdims=True)))


@dataclass
class GradState:
    """Everything the next step depends on: ``step`` steps done, the free parameters ``u`` (G, K), Adam's moments
    and step count, the fresh-noise generator's state, and the sum / count of the averaged iterates."""

    step: int
    u: np.ndarray
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    adam_step: float
    rng: bytes
    avg_sum: np.ndarray
    avg_n: int
    samples: int = 0
    elapsed_s: float = 0.0

    @classmethod
    def fresh(cls, shape: tuple[int, int], generator: torch.Generator) -> GradState:
        zeros = np.zeros(shape)
        return cls(0, zeros, zeros.copy(), zeros.copy(), 0.0, bytes(generator.get_state().numpy()), zeros.copy(), 0)

    def optimizer(self, lr: float) -> tuple[torch.Tensor, torch.optim.Adam]:
        """The free parameters as a float64 leaf tensor and an Adam optimiser holding this state's moments."""
        u = torch.tensor(self.u, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([u], lr=lr)
        if self.adam_step > 0:
            state = opt.state_dict()
            state["state"] = {0: {"step": torch.tensor(self.adam_step, dtype=torch.float32),
                                  "exp_avg": torch.tensor(self.exp_avg, dtype=torch.float64),
                                  "exp_avg_sq": torch.tensor(self.exp_avg_sq, dtype=torch.float64)}}
            opt.load_state_dict(state)
        return u, opt

    def capture(self, u: torch.Tensor, opt: torch.optim.Adam, generator: torch.Generator) -> None:
        """Take ``u``, Adam's moments and the generator's state after a step."""
        st = opt.state[u]
        self.u = u.detach().numpy().copy()
        self.exp_avg, self.exp_avg_sq = st["exp_avg"].numpy().copy(), st["exp_avg_sq"].numpy().copy()
        self.adam_step = float(st["step"])
        self.rng = bytes(generator.get_state().numpy())

    def restore_generator(self, generator: torch.Generator) -> None:
        generator.set_state(torch.tensor(list(self.rng), dtype=torch.uint8))

    def to_json(self) -> dict:
        return {"step": self.step, "u": self.u.tolist(), "exp_avg": self.exp_avg.tolist(),
                "exp_avg_sq": self.exp_avg_sq.tolist(), "adam_step": self.adam_step,
                "rng": base64.b64encode(self.rng).decode(), "avg_sum": self.avg_sum.tolist(), "avg_n": self.avg_n,
                "samples": self.samples, "elapsed_s": self.elapsed_s}

    @classmethod
    def from_json(cls, rec: dict) -> GradState:
        arr = lambda key: np.asarray(rec[key], dtype=np.float64)  # noqa: E731
        return cls(int(rec["step"]), arr("u"), arr("exp_avg"), arr("exp_avg_sq"), float(rec["adam_step"]),
                   base64.b64decode(rec["rng"]), arr("avg_sum"), int(rec["avg_n"]), int(rec.get("samples", 0)),
                   float(rec.get("elapsed_s", 0.0)))
