"""Fault injection for the write-site tests: a full disk (ENOSPC) or a kill part-way through a write; snapshots of a
folder tree, to show that a refused command left nothing behind."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from lcsc.atomic import is_temp_file

PARTIAL = b"\x93NUMPY-or-safetensors-header-then-nothing"


class Killed(BaseException):
    """A kill arriving mid-write: a BaseException, so no ``except Exception`` in lcsc can swallow it."""


def enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def safetensors_enospc() -> Exception:
    """What safetensors' ``save_file`` really raises on a full disk (a Rust I/O error, not an ``OSError``)."""
    from safetensors import SafetensorError

    return SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _complete_cache(folder: Path) -> bool:
    """A stack cache folder holding only complete caches (each sidecar with its matrix), and at least one."""
    names = {p.name for p in folder.iterdir()}
    stems = {n[: -len(".json")] for n in names if n.startswith("stack-") and n.endswith(".json")}
    return bool(stems) and all(s + ".npy" in names for s in stems) and all(
        n.removesuffix(".extras.safetensors").removesuffix(".npy").removesuffix(".json") in stems for n in names)


def tree_snapshot(*folders: Path, complete_caches: bool = True) -> dict[str, tuple]:
    """Every path under ``folders`` (the folders themselves included): a file as ``("file", size, mtime_ns)``, a
    folder (empty ones too) as ``("dir",)``, a link as ``("link", target)``. Equal snapshots before and after a
    command mean it created, removed, grew or rewrote nothing there (a folder's own mtime is left out: a temp file
    that came and went changes it, and is allowed). ``complete_caches=False`` leaves out ``.lcsc-cache`` folders
    that hold complete stack caches only (a command that refuses after opening valid checkpoints may have cached
    them, for the next run); an empty or partial one still shows."""
    out: dict[str, tuple] = {}
    for folder in folders:
        for path in [folder, *sorted(folder.rglob("*"))]:
            cache = next((p for p in (path, *path.parents) if p.name == ".lcsc-cache"), None)
            if not complete_caches and cache is not None and cache.is_dir() and _complete_cache(cache):
                continue
            if path.is_symlink():
                out[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                out[str(path)] = ("dir",)
            elif path.exists():
                st = path.stat()
                out[str(path)] = ("file", st.st_size, st.st_mtime_ns)
    return out


def temp_files(folder: Path) -> list[Path]:
    """Leftover temp files (``atomic_path`` names, or any hidden ``*.tmp``) under ``folder``."""
    return [p for p in folder.rglob("*") if p.is_file() and (is_temp_file(p) or p.name.endswith(".tmp"))]


def leave_temp(final: Path, suffix: str = "", data: bytes = PARTIAL) -> Path:
    """The temp file a process SIGKILLed inside ``atomic_path(final, suffix)`` leaves behind (nothing runs after a
    SIGKILL, so no clean-up deletes it)."""
    tmp = final.with_name(f".{final.name}.k1ll3d_x{suffix}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(data)
    return tmp


def fail_writes_to(path: Path, exc_factory, monkeypatch, *, partial: int = 7, on: str = "write",
                   after: int = 0) -> None:
    """Make ``os.write`` (``on="write"``: writes ``partial`` bytes first) or ``os.fsync`` (``on="fsync"``: the bytes
    are written, the flush to disk fails, as delayed allocation reports a full disk) fail for the file at ``path``
    (looked up at each call, so it may not exist yet) after ``after`` calls on it succeeded."""
    real, calls = getattr(os, on), [0]

    def fails(fd: int) -> bool:
        try:
            a, b = os.fstat(fd), path.stat()
        except OSError:
            return False
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
            return False
        calls[0] += 1
        return calls[0] > after

    def fake_write(fd, data):
        if fails(fd):
            real(fd, bytes(data)[:partial])
            raise exc_factory()
        return real(fd, data)

    def fake_fsync(fd):
        if fails(fd):
            raise exc_factory()
        return real(fd)

    monkeypatch.setattr(os, on, fake_write if on == "write" else fake_fsync)


def fail_save_file(monkeypatch, name_part: str, make) -> list[str]:
    """Patch the checkpoint writer (``lcsc.checkpoints.format.save_file``) so that a file whose name holds
    ``name_part`` gets a few bytes and then ``make()`` is raised; returns the names it failed on."""
    import safetensors.torch as st

    real, hit = st.save_file, []

    def save_file(tensors, filename, metadata=None):
        if name_part in Path(filename).name:
            hit.append(filename)
            Path(filename).write_bytes(PARTIAL)
            raise make()
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr("lcsc.checkpoints.format.save_file", save_file)
    return hit
