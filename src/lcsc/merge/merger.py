"""StackMerger: a checkpoint stack plus group plan and device, as the search sees it (merge a generation, save)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lcsc.checkpoints.stack import CheckpointStack
from lcsc.merge.coefficients import Coefficients
from lcsc.merge.export import save_merged
from lcsc.merge.groups import GroupPlan
from lcsc.merge.linear import merge_many, project_gradient

__all__ = ["StackMerger"]


class StackMerger:
    """What the search needs from merging: K, G, steps, hashes, ``merge_many(A)`` → state dicts, ``save``.

    K counts every row: the K_window window checkpoints (``steps``), then the stack's anchors (``anchors``).
    """

    def __init__(
        self,
        stack: CheckpointStack,
        groups: dict[str, list[str]] | None = None,
        device: str | torch.device | None = None,
    ):
        self.stack, self.device = stack, device
        self.groups = {k: tuple(v) for k, v in groups.items()} if groups else None
        self.plan = GroupPlan.from_globs(stack.layout, groups) if groups else GroupPlan.single(stack.layout)

    @property
    def K(self) -> int:  # noqa: N802
        return self.stack.K

    @property
    def G(self) -> int:  # noqa: N802
        return self.plan.G

    @property
    def K_window(self) -> int:  # noqa: N802
        """Window checkpoints (the first K_window of the K rows)."""
        return self.stack.K_window

    @property
    def steps(self) -> list[int]:
        """The window checkpoints' steps (K_window of them)."""
        return list(self.stack.steps)

    @property
    def hashes(self) -> list[str]:
        """Content hashes of all K rows: the window checkpoints', then the anchors' (so a journal or a Ray worker
        with other anchors is refused like one with other checkpoints)."""
        return self.stack.row_hashes

    @property
    def anchors(self) -> list[dict]:
        """The anchors as JSON objects (:meth:`lcsc.checkpoints.Anchor.to_json`), in row order."""
        return [a.to_json() for a in self.stack.anchors]

    def merge_many(self, A: np.ndarray) -> list[dict[str, torch.Tensor]]:
        """(B, G, K) coefficients → B state dicts (views into one (B, P) result; one pass over the stack)."""
        out = merge_many(
            self.stack, np.asarray(A).reshape(len(A), self.G, self.K), plan=self.plan, device=self.device
        )
        return [self.stack.state_dict(row) for row in out]

    def merge_vector(self, a: np.ndarray) -> torch.Tensor:
        """The merge of one (G, K) coefficient array as the flat float32 P-vector (on the merger's device)."""
        return merge_many(self.stack, np.asarray(a).reshape(1, self.G, self.K), plan=self.plan, device=self.device)[0]

    def state_dict(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """A P-vector as a state dict (views: a gradient with respect to the dict's tensors reaches the vector)."""
        return self.stack.state_dict(vector)

    def project(self, grad: torch.Tensor) -> np.ndarray:
        """∂L/∂a (G, K) from ∂L/∂θ (a P-vector): one pass over the stack (:func:`lcsc.merge.project_gradient`)."""
        return project_gradient(self.stack, grad, plan=self.plan)

    def coefficients(self, individual: np.ndarray) -> Coefficients:
        """An individual as the coefficient file format."""
        values = np.asarray(individual).reshape(self.G, self.K)
        return Coefficients(tuple(self.steps), values if self.groups else values[0], self.groups,
                            tuple(self.anchors))

    def save(self, path: str | Path, individual: np.ndarray) -> Path:
        """Write the merge of ``individual`` as a safetensors checkpoint with provenance metadata."""
        coeffs = self.coefficients(individual)
        state = self.merge_many(np.asarray(individual)[None])[0]
        return save_merged(path, self.stack, state, coeffs)
