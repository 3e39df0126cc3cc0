"""θ = Σₖ aₖθₖ over a checkpoint stack (LCSC, Eq. 8): one candidate or a whole generation in one pass (a GEMM)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from lcsc.checkpoints.stack import CheckpointStack
from lcsc.errors import CoefficientError
from lcsc.merge.coefficients import Coefficients
from lcsc.merge.groups import GroupPlan

__all__ = ["merge", "merge_many", "merge_coefficients", "project_gradient", "DEFAULT_CHUNK_BYTES"]

DEFAULT_CHUNK_BYTES = 64 << 20


def _as_matrix(stack: CheckpointStack, A, plan: GroupPlan) -> torch.Tensor:
    """Coefficients as a float32 (B, G, K) tensor, validated."""
    A = torch.as_tensor(np.asarray(A, dtype=np.float64) if not isinstance(A, torch.Tensor) else A)
    A = A.detach().to("cpu", torch.float64)
    if A.dim() == 1:
        A = A[None, None, :]
    elif A.dim() == 2:
        A = A[:, None, :] if plan.G == 1 else A[None]
    if A.dim() != 3 or A.shape[1:] != (plan.G, stack.K):
        rows = f"K={stack.K} rows ({stack.K_window} checkpoints + {len(stack.anchors)} anchors)" if stack.anchors \
            else f"K={stack.K} checkpoints"
        raise CoefficientError(f"coefficients of shape {tuple(A.shape)} do not fit {plan.G} group(s) × {rows}")
    if not bool(torch.isfinite(A).all()):
        raise CoefficientError("coefficients contain NaN or Inf")
    return A.to(torch.float32)


def _clamp_nonnegative(stack: CheckpointStack, out: torch.Tensor) -> None:
    for name, sl in stack.layout.nonnegative_slices():
        part = out[:, sl]
        if bool((part < 0).any()):
            warnings.warn(f"merged {name!r} had negative entries (variances); clamped to 0", stacklevel=3)
            part.clamp_(min=0)


def merge_many(
    stack: CheckpointStack,
    A,
    *,
    plan: GroupPlan | None = None,
    device: str | torch.device | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """Merge B coefficient vectors at once: returns a (B, P) float32 tensor; row b is Σₖ A[b,k]·θₖ.

    ``A`` is (B, K), or (B, G, K) with a :class:`GroupPlan`; K counts the stack's anchors after its window rows.
    The stack is read once, chunk by chunk along P (``chunk_bytes`` of stack per GEMM), accumulating in float32.
    ``device="cuda"`` computes on the GPU, with the stack resident there when it fits and streamed otherwise.
    View a row as a state dict with ``stack.state_dict(out[b])``.
    """
    plan = plan or GroupPlan.single(stack.layout)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    A = _as_matrix(stack, A, plan)
    if dev.type == "cpu":
        # numpy's allocator asks for huge pages on large arrays: first touch is ~4x cheaper than torch.empty's
        out = torch.from_numpy(np.empty((A.shape[0], stack.P), dtype=np.float32))
    else:
        out = torch.empty((A.shape[0], stack.P), dtype=torch.float32, device=dev)
    cols = max(1024, chunk_bytes // max(1, stack.K * stack.matrix.element_size()))
    blocks = [(c0, min(end, c0 + cols), g) for start, end, g in plan.runs for c0 in range(start, end, cols)]
    if dev.type == "cpu":
        _merge_cpu(stack.matrix, A, out, blocks, stack.anchor_matrix)
    else:
        _merge_device(stack, A.to(dev), out, blocks)
    _clamp_nonnegative(stack, out)
    return out


def _merge_cpu(
    matrix: torch.Tensor, A: torch.Tensor, out: torch.Tensor, blocks: list, anchors: torch.Tensor | None = None
) -> None:
    """CPU GEMMs through numpy's BLAS, which streams a row-major K×P matrix near memory bandwidth
    (measured ~1.5x faster than torch.mm for B=1 on the project machine; see benchmarks/merge.py). With anchors,
    each block adds A[:, g, K_w:] @ anchors[:, c0:c1] to the window's A[:, g, :K_w] @ block."""
    A_np, out_np = A.numpy(), out.numpy()
    direct = matrix.numpy() if matrix.dtype == torch.float32 else None
    K_w = matrix.shape[0]
    anchors_np = anchors.numpy() if anchors is not None else None
    for c0, c1, g in blocks:
        block = direct[:, c0:c1] if direct is not None else matrix[:, c0:c1].to(torch.float32).numpy()
        if anchors_np is None:
            np.matmul(A_np[:, g, :], block, out=out_np[:, c0:c1])
            continue
        np.matmul(A_np[:, g, :K_w], block, out=out_np[:, c0:c1])
        out_np[:, c0:c1] += A_np[:, g, K_w:] @ anchors_np[:, c0:c1]


class _Stager:
    """Column blocks of the memory-mapped stack on their way to an accelerator, through one reused host buffer
    (pinned for CUDA): a fresh host tensor per block pays page faults on new memory every time, 0.47 against 2.98
    GB/s measured by benchmarks/scale.py (docs/guide/scale.md). Each copy is blocking, so the buffer is free for
    the next block when it returns."""

    def __init__(self, matrix: torch.Tensor, cols: int, device: torch.device) -> None:
        self.matrix, self.device, self.rows = matrix, device, matrix.shape[0]
        self.flat = torch.empty(self.rows * cols, dtype=matrix.dtype, pin_memory=device.type == "cuda")

    def __call__(self, c0: int, c1: int) -> torch.Tensor:
        host = self.flat[: self.rows * (c1 - c0)].view(self.rows, c1 - c0)
        host.copy_(self.matrix[:, c0:c1])
        return host.to(self.device)


def _merge_device(stack: CheckpointStack, A: torch.Tensor, out: torch.Tensor, blocks: list) -> None:
    """GEMMs on an accelerator: the stack resident there when it fits, else streamed chunk by chunk through one
    reused host buffer as wide as the widest block (anchors, A×P float32, are always resident)."""
    resident = stack.device_matrix(out.device)
    cols = max((c1 - c0 for c0, c1, _ in blocks), default=1)
    stage = _Stager(stack.matrix, cols, out.device) if resident is None else None
    anchors = stack.device_anchor_matrix(out.device) if stack.anchors else None
    K_w = stack.K_window
    for c0, c1, g in blocks:
        block = resident[:, c0:c1] if resident is not None else stage(c0, c1)
        if anchors is None:
            out[:, c0:c1] = A[:, g, :] @ block.to(torch.float32)
            continue
        out[:, c0:c1] = A[:, g, :K_w] @ block.to(torch.float32)
        out[:, c0:c1].addmm_(A[:, g, K_w:], anchors[:, c0:c1])


def project_gradient(
    stack: CheckpointStack,
    grad: torch.Tensor,
    *,
    plan: GroupPlan | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> np.ndarray:
    """∂L/∂a from ∂L/∂θ: θ = aᵀS is linear in a, so ∂L/∂a[g, k] = Σ_{p in group g} S[k, p]·∂L/∂θ[p] (the transpose
    of :func:`merge_many`, one pass over the stack chunk by chunk; float64 on the CPU, float32 GEMMs accumulated in
    float64 on an accelerator, with the stack resident there when it fits). Returns (G, K) on the CPU."""
    plan = plan or GroupPlan.single(stack.layout)
    g = grad.detach().reshape(-1)
    if g.shape[0] != stack.P:
        raise CoefficientError(f"a gradient of {g.shape[0]} entries does not fit this stack's P={stack.P}")
    out = np.zeros((plan.G, stack.K))
    K_w, dev = stack.K_window, g.device
    resident = stack.device_matrix(dev) if dev.type != "cpu" else None
    anchors = (stack.device_anchor_matrix(dev) if dev.type != "cpu" else stack.anchor_matrix) if stack.anchors else None
    g = g.to(torch.float64) if dev.type == "cpu" else g.to(torch.float32)
    cols = max(1024, chunk_bytes // max(1, stack.K * stack.matrix.element_size()))
    stage = _Stager(stack.matrix, cols, dev) if dev.type != "cpu" and resident is None else None
    for start, end, group in plan.runs:
        for c0 in range(start, end, cols):
            c1 = min(end, c0 + cols)
            piece = g[c0:c1]
            block = resident[:, c0:c1] if resident is not None else (stage(c0, c1) if stage else stack.matrix[:, c0:c1])
            out[group, :K_w] += (block.to(piece.dtype) @ piece).double().cpu().numpy()
            if anchors is not None:
                out[group, K_w:] += (anchors[:, c0:c1].to(piece.dtype) @ piece).double().cpu().numpy()
    return out


def merge(
    stack: CheckpointStack,
    a,
    *,
    plan: GroupPlan | None = None,
    device: str | torch.device | None = None,
    as_vector: bool = False,
) -> dict[str, torch.Tensor] | torch.Tensor:
    """Merge one coefficient vector (K,) — or (G, K) with a plan — into a state dict (or the flat P-vector)."""
    vector = merge_many(
        stack, torch.as_tensor(np.asarray(a, dtype=np.float64))[None], plan=plan, device=device
    )[0]
    return vector if as_vector else stack.state_dict(vector)


def merge_coefficients(
    stack: CheckpointStack, coeffs: Coefficients, *, device: str | torch.device | None = None,
    source: str = "coefficients",
) -> dict[str, torch.Tensor]:
    """Merge with a coefficient file's content after checking its steps and anchors against the stack (errors name
    ``source``, e.g. the file)."""
    coeffs.check_rows(stack, source)
    plan = (
        None
        if coeffs.groups is None
        else GroupPlan.from_globs(stack.layout, {k: list(v) for k, v in coeffs.groups.items()})
    )
    values = coeffs.values if coeffs.groups is not None else coeffs.values[0]
    return merge(stack, values, plan=plan, device=device)
