"""CheckpointStack: K checkpoints of one network as one validated, step-ordered K×P matrix (memory-mapped)."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError

from lcsc.atomic import STALE_TEMP_AGE_S, atomic_path, make_folders, remove_empty_folders, remove_stale_temps
from lcsc.checkpoints.anchors import Anchor, anchor_rows
from lcsc.checkpoints.build import STORAGE_DTYPES, BuildResult, build_rows, npy_header, numpy_view
from lcsc.checkpoints.cache import (
    CacheFiles,
    cache_files,
    default_cache_dir,
    load_cached,
    map_matrix,
    remove_stale,
    write_sidecar,
)
from lcsc.checkpoints.layout import Layout
from lcsc.checkpoints.reader import discover_checkpoints, read_step, weights_file
from lcsc.errors import CheckpointError, DiskFullError
from lcsc.progress import stage, stage_line

__all__ = ["CheckpointStack"]


@dataclass
class CheckpointStack:
    """K checkpoints as rows of ``matrix`` (K×P, float32 or a 16-bit storage dtype), ordered by training step.

    Float parameters and float buffers form the matrix; non-float tensors (``extras``) come from the reference
    (last) checkpoint. Use :meth:`open` to build one; :func:`lcsc.merge.merge` to combine rows.

    Anchors (:mod:`lcsc.checkpoints.anchors`) are further rows after the window's: ``matrix`` holds the K_window
    window checkpoints, ``anchor_matrix`` (A×P float32, in RAM, never cached) the anchors; K = K_window + A.
    """

    paths: list[Path]
    steps: list[int]
    step_origins: list[str]
    metadata: list[dict[str, Any]]
    hashes: list[str]
    layout: Layout
    matrix: torch.Tensor
    extras: dict[str, torch.Tensor]
    cache_path: Path | None = None
    cache_state: str = "in memory (no cache)"
    notes: list[str] = field(default_factory=list)
    anchors: list[Anchor] = field(default_factory=list)
    anchor_matrix: torch.Tensor | None = None
    _device_matrix: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _device_anchors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def K(self) -> int:  # noqa: N802 - the paper's symbol
        """Number of rows a coefficient vector weights: window checkpoints, then anchors."""
        return self.matrix.shape[0] + len(self.anchors)

    @property
    def K_window(self) -> int:  # noqa: N802 - the paper's symbol
        """Number of window checkpoints (the rows of ``matrix``)."""
        return self.matrix.shape[0]

    @property
    def row_names(self) -> list[str]:
        """A name per row: ``"step 800"`` for each window checkpoint, then the anchors' names."""
        return [f"step {s}" for s in self.steps] + [a.name for a in self.anchors]

    @property
    def row_hashes(self) -> list[str]:
        """Content hashes of every row: the window checkpoints', then the anchors'."""
        return list(self.hashes) + [a.sha256 for a in self.anchors]

    @property
    def P(self) -> int:  # noqa: N802 - the paper's symbol
        """Number of combined (float) scalars per checkpoint."""
        return self.matrix.shape[1]

    @property
    def storage_dtype(self) -> torch.dtype:
        return self.matrix.dtype

    @property
    def nbytes(self) -> int:
        """Bytes of the window's K_window×P matrix (anchors not included)."""
        return self.matrix.numel() * self.matrix.element_size()

    @property
    def anchor_nbytes(self) -> int:
        """Bytes of the A×P anchor matrix (0 without anchors)."""
        return 0 if self.anchor_matrix is None else self.anchor_matrix.numel() * self.anchor_matrix.element_size()

    @classmethod
    def open(
        cls,
        paths_or_dir: str | Path | list[str | Path],
        *,
        key: str | None = None,
        storage: str = "float32",
        cache: bool = True,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        anchors: Mapping[str, dict[str, torch.Tensor] | str | Path] | None = None,
    ) -> CheckpointStack:
        """Open checkpoints (a folder, or a list of files/folders) as a stack.

        With ``cache=True`` the matrix is built once into ``cache_dir`` (default: ``.lcsc-cache`` beside the
        checkpoints) and memory-mapped on later opens; ``cache=False`` builds it in RAM. ``storage`` may be
        ``float32``, ``float16`` or ``bfloat16`` (merging always accumulates in float32). ``anchors`` maps names to
        state dicts or checkpoint paths: extra rows after the window (see :meth:`with_anchors`).
        """
        stack = cls._open_window(paths_or_dir, key=key, storage=storage, cache=cache, cache_dir=cache_dir,
                                 progress=progress)
        return stack.with_anchors(list(anchors.items()), key=key) if anchors else stack

    @classmethod
    def _open_window(cls, paths_or_dir, *, key, storage, cache, cache_dir, progress) -> CheckpointStack:
        """The window's stack (no anchors): see :meth:`open`."""
        if storage not in STORAGE_DTYPES:
            raise CheckpointError(f"storage={storage!r}: expected one of {', '.join(STORAGE_DTYPES)}")
        paths = _sorted_by_name_step([p.resolve() for p in discover_checkpoints(paths_or_dir)])
        if len(paths) < 2:
            raise CheckpointError(
                f"{paths[0]}: only one checkpoint found; a linear combination needs at least two"
            )
        dtype = STORAGE_DTYPES[storage]
        if not cache:
            matrix_box: list[torch.Tensor] = []

            def allocate(layout: Layout):
                matrix_box.append(torch.empty((len(paths), layout.numel), dtype=dtype))
                return lambda k, row: matrix_box[0][k].copy_(row)

            with stage("checkpoint stack", f"reading {len(paths)} checkpoints into memory (no cache)"):
                result = build_rows(paths, allocate, key=key, storage=dtype, progress=progress)
            order = _step_order(result)
            matrix = matrix_box[0] if order == sorted(order) else matrix_box[0][order].contiguous()
            return cls._assemble(result, order, matrix, None, "in memory (no cache)")
        files = cache_files(paths, key, storage, Path(cache_dir) if cache_dir else default_cache_dir(paths))
        if files.exists():  # a complete cache (the sidecar is written last); an unreadable one is rebuilt
            with contextlib.suppress(OSError, ValueError, KeyError, SafetensorError):
                stack = cls._from_cache(files, dtype)
                stage_line(f"checkpoint stack ({len(paths)} checkpoints): cache reused, {files.matrix}")
                return stack
        try:
            with stage("checkpoint stack", f"reading {len(paths)} checkpoints into {files.matrix}"):
                return cls._build_cache(paths, files, key, dtype, progress)
        except DiskFullError as exc:
            err = DiskFullError(f"{exc} (or open the stack without a cache file: --no-cache / cache=False, or "
                                "put the cache on another disk: --cache-dir / cache_dir= / LCSC_CACHE_DIR)")
            err.errno = exc.errno
            raise err from exc

    @classmethod
    def _build_cache(
        cls, paths: list[Path], files: CacheFiles, key: str | None, dtype: torch.dtype, progress: bool
    ):
        """Write the matrix, then the extras, then the sidecar that marks the cache complete. A build that fails
        leaves no cache files; one that was killed leaves no sidecar (so the next open rebuilds) and temp files
        that a later build deletes once they are :data:`~lcsc.atomic.STALE_TEMP_AGE_S` old."""
        remove_stale_temps(files.matrix.parent, older_than_s=STALE_TEMP_AGE_S)
        created = make_folders(files.matrix.parent)  # taken away again (when empty) if the build fails
        try:
            return cls._write_cache(paths, files, key, dtype, progress)
        except BaseException:
            remove_empty_folders(created)
            raise

    @classmethod
    def _write_cache(
        cls, paths: list[Path], files: CacheFiles, key: str | None, dtype: torch.dtype, progress: bool
    ) -> CheckpointStack:
        """The matrix, extras and sidecar of :meth:`_build_cache` (whose folder exists)."""
        with atomic_path(files.matrix) as tmp:
            with open(tmp, "wb") as fh:

                def allocate(layout: Layout):
                    npy_header(fh, dtype, (len(paths), layout.numel))
                    return lambda k, row: fh.write(memoryview(numpy_view(row)).cast("B"))

                result = build_rows(paths, allocate, key=key, storage=dtype, progress=progress)
            order = _step_order(result)
            if order != sorted(order):
                _reorder_rows(tmp, order)
        try:
            stack = cls._assemble(result, order, map_matrix(files.matrix, dtype), files, "built")
            write_sidecar(files, stack._sidecar_info(), stack.extras)
        except BaseException:
            for path in (files.sidecar, files.extras, files.matrix):
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        remove_stale(files)
        return stack

    @classmethod
    def _from_cache(cls, files: CacheFiles, dtype: torch.dtype) -> CheckpointStack:
        info, matrix, extras = load_cached(files, dtype)
        return cls(
            paths=[Path(p) for p in info["paths"]],
            steps=info["steps"],
            step_origins=info["step_origins"],
            metadata=info["metadata"],
            hashes=info["hashes"],
            layout=Layout.from_json(info["layout"]),
            matrix=matrix,
            extras=extras,
            cache_path=files.matrix,
            cache_state="reused",
            notes=info.get("notes", []),
        )

    @classmethod
    def _assemble(cls, r: BuildResult, order: list[int], matrix, files: CacheFiles | None, state: str):
        """The stack in step order; ``matrix`` rows are already in that order."""
        ref = order[-1]
        extras = r.others[ref]
        notes = [
            f"{r.paths[k].name}: non-float tensor {name!r} differs from the reference {r.paths[ref].name}; "
            "the reference value is used"
            for k in order[:-1]
            for name, t in r.others[k].items()
            if not torch.equal(t, extras[name])
        ]
        for note in notes:
            warnings.warn(note, stacklevel=4)
        pick = lambda xs: [xs[k] for k in order]  # noqa: E731
        return cls(
            paths=pick(r.paths), steps=pick(r.steps), step_origins=pick(r.step_origins), metadata=pick(r.metadata),
            hashes=pick(r.hashes), layout=r.layout, matrix=matrix, extras=extras,
            cache_path=files.matrix if files else None, cache_state=state, notes=notes,
        )  # fmt: skip

    def _sidecar_info(self) -> dict[str, Any]:
        return {
            "paths": [str(p) for p in self.paths],
            "steps": self.steps,
            "step_origins": self.step_origins,
            "metadata": self.metadata,
            "hashes": self.hashes,
            "layout": self.layout.to_json(),
            "storage": str(self.storage_dtype).removeprefix("torch."),
            "notes": self.notes,
        }

    def with_anchors(
        self, anchors: Sequence[tuple[Anchor | str, dict[str, torch.Tensor] | str | Path]], *, key: str | None = None
    ) -> CheckpointStack:
        """A new stack with these anchors (replacing any this one has) after the window rows, sharing the window's
        matrix. Each pairs an :class:`Anchor` (kept as given) or a name with a state dict or a checkpoint path (read
        safely, ``key`` selecting a wrapped state dict). An anchor of another layout or dtype, with NaN/Inf, with a
        repeated name, or with the content hash of a window checkpoint or another anchor is a CheckpointError."""
        rows, matrix = anchor_rows(list(anchors), self.layout, self.paths, self.hashes, key=key)
        return dataclasses.replace(self, anchors=rows, anchor_matrix=matrix, notes=list(self.notes),
                                   _device_anchors={})

    def state_dict(self, vector: torch.Tensor, cast: bool = True) -> dict[str, torch.Tensor]:
        """View a flat P-vector as a full state dict (float tensors are views when dtypes match; extras added)."""
        if vector.dim() != 1 or vector.shape[0] != self.P:
            raise CheckpointError(
                f"vector of shape {tuple(vector.shape)} does not match this stack's P={self.P}"
            )
        out = self.layout.unflatten(vector, cast=cast)
        out.update({k: v.to(vector.device) for k, v in self.extras.items()})
        return out

    def flatten(self, state_dict: dict[str, torch.Tensor]) -> torch.Tensor:
        """The float32 P-vector of a state dict with this stack's layout."""
        self.layout.validate(Path("<state_dict>"), state_dict, self.paths[-1])
        return self.layout.flatten(state_dict, out=torch.empty(self.P, dtype=torch.float32))

    def checkpoint(self, k: int) -> dict[str, torch.Tensor]:
        """Row k as a state dict, as stored: the k-th window checkpoint (in step order) for k < K_window (float32
        unless 16-bit storage), else anchor k − K_window. Negative k counts window checkpoints from the end."""
        if k >= self.K:
            raise IndexError(f"row {k} of a stack with K={self.K} rows")
        if k >= self.K_window:
            return self.state_dict(self.anchor_matrix[k - self.K_window])
        return self.state_dict(self.matrix[k].to(torch.float32))

    def device_matrix(self, device: torch.device) -> torch.Tensor | None:
        """The matrix resident on ``device`` (copied once and kept), or None when it does not fit there."""
        key = str(device)
        if key not in self._device_matrix:
            if device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(device)
                if self.nbytes > 0.8 * free:
                    return None
            self._device_matrix[key] = self.matrix.to(device)
        return self._device_matrix[key]

    def device_anchor_matrix(self, device: torch.device) -> torch.Tensor | None:
        """The A×P anchor matrix on ``device`` (copied once and kept), or None without anchors."""
        if self.anchor_matrix is None:
            return None
        key = str(device)
        if key not in self._device_anchors:
            self._device_anchors[key] = self.anchor_matrix.to(device)
        return self._device_anchors[key]

    def summary(self) -> dict[str, Any]:
        """What ``lcsc inspect`` shows: sizes, order, dtypes, disk use and cache state."""
        dtypes: dict[str, int] = {}
        for spec in self.layout.specs:
            dtypes[spec.dtype] = dtypes.get(spec.dtype, 0) + spec.numel
        return {
            "K": self.K,
            "K_window": self.K_window,
            "P": self.P,
            "steps": self.steps,
            "order": [
                {"step": s, "from": o, "file": str(p)}
                for s, o, p in zip(self.steps, self.step_origins, self.paths)
            ],
            "tensors": len(self.layout.specs),
            "non_float_tensors": [s.name for s in self.layout.other_specs],
            "dtypes": dtypes,
            "storage": str(self.storage_dtype).removeprefix("torch."),
            "stack_bytes": self.nbytes,
            "checkpoints_disk_bytes": sum(weights_file(p).stat().st_size for p in self.paths),
            "cache_path": str(self.cache_path) if self.cache_path else None,
            "cache_state": self.cache_state,
            "cache_disk_bytes": _cache_bytes(self.cache_path),
            "anchors": [{**a.to_json(), "row": self.K_window + i} for i, a in enumerate(self.anchors)],
            "anchor_bytes": self.anchor_nbytes,
            "notes": self.notes,
        }


def _step_order(r: BuildResult) -> list[int]:
    """Row indices in training-step order; two checkpoints with one step are an error."""
    order = sorted(range(len(r.paths)), key=lambda k: r.steps[k])
    for a, b in zip(order, order[1:]):
        if r.steps[a] == r.steps[b]:
            raise CheckpointError(f"{r.paths[a]} and {r.paths[b]} both have step {r.steps[a]}")
    return order


def _reorder_rows(path: Path, order: list[int]) -> None:
    """Rewrite a .npy matrix with its rows permuted (only when metadata steps disagree with file names)."""
    source = np.load(path, mmap_mode="r")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_2_0(
            fh,
            {
                "descr": np.lib.format.dtype_to_descr(source.dtype),
                "fortran_order": False,
                "shape": source.shape,
            },
        )
        for k in order:
            fh.write(np.ascontiguousarray(source[k]).tobytes())
    del source


def _cache_bytes(matrix_path: Path | None) -> int:
    if matrix_path is None:
        return 0
    stem = matrix_path.name[: -len(".npy")]
    files = (
        matrix_path,
        matrix_path.with_name(stem + ".json"),
        matrix_path.with_name(stem + ".extras.safetensors"),
    )
    return sum(p.stat().st_size for p in files if p.is_file())


def _sorted_by_name_step(paths: list[Path]) -> list[Path]:
    """Read files in file-name step order, so rows rarely need reordering once metadata steps are known."""

    def name_step(p: Path) -> tuple[int, str]:
        try:
            return read_step(p, {})[0], p.name
        except CheckpointError:
            return -1, p.name

    return sorted(paths, key=name_step)
