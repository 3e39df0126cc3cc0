"""Atomic file writes (temp file in the same folder, fsync, rename), crash-safe appends, and content hashing.

Every final-name write in lcsc goes through :func:`atomic_path` (or :func:`write_text` / :func:`write_json`): a
reader sees the previous complete file or the new complete one, never a part. A write that fails removes its temp
file; a process killed mid-write leaves at most a hidden temp file ``.NAME.XXXXXXXX[SUFFIX].tmp`` beside the
target, which no reader picks up and :func:`remove_stale_temps` deletes. Append-only logs (the search journal, the
loss log) use :func:`append_record`, which cuts a failed append back off; a hard kill mid-append can leave a last
line without its newline, which their readers drop. A full disk (ENOSPC) or quota (EDQUOT) becomes one
:class:`~lcsc.errors.DiskFullError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lcsc.errors import ConfigError, DiskFullError, first_line
from lcsc.units import human_bytes

__all__ = [
    "STALE_TEMP_AGE_S",
    "append_record",
    "atomic_path",
    "check_writable",
    "read_json_object",
    "disk_full_as_error",
    "is_temp_file",
    "make_folders",
    "remove_empty_folders",
    "remove_stale_temps",
    "sha256_file",
    "write_json",
    "write_text",
]

_DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
# .NAME.XXXXXXXX[SUFFIX].tmp: 8 random characters from [a-z0-9_] (as tempfile.mkstemp names them).
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?\.tmp$")
_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_TEMP_TRIES = 100
_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how Rust writers (safetensors) name the errno
STALE_TEMP_AGE_S = 3600.0  # a temp file untouched this long in a shared folder belongs to a dead process
_KEPT = "the previous file, if any, is unchanged; free some space and run again"


@contextlib.contextmanager
def disk_full_as_error(path: str | os.PathLike, hint: str = _KEPT) -> Iterator[None]:
    """Turn an error raised inside that reports ENOSPC/EDQUOT (see :func:`_disk_full_errno`) into one
    :class:`DiskFullError` naming ``path`` and ``hint``; every other error passes through unchanged."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        code = _disk_full_errno(exc)
        if code is None:
            raise
        folder = Path(path).parent
        free = ""
        with contextlib.suppress(OSError):
            free = f" ({human_bytes(shutil.disk_usage(folder).free)} free in {folder})"
        err = DiskFullError(f"{path}: cannot write: {os.strerror(code).lower()}{free}; {hint}")
        err.errno = code
        raise err from exc


def _disk_full_errno(exc: BaseException) -> int | None:
    """ENOSPC/EDQUOT when ``exc`` or an exception it was raised from says so, else None. Writers report a full disk
    in different ways: ``OSError(28)``; safetensors a ``SafetensorError`` "… (os error 28)"; ``torch.save`` to a
    file object a ``RuntimeError`` raised while handling the ``OSError(28)``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return exc.errno
        match = _OS_ERROR.search(str(exc))
        if match and int(match.group(1)) in _DISK_FULL:
            return int(match.group(1))
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename it over ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched; a full disk is raised as a
    :class:`DiskFullError` naming ``target``.
    """
    target = Path(target)
    if target.is_dir():  # else os.replace fails at the end naming the temp file
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(target))
    with disk_full_as_error(target):
        created = make_folders(target.parent)
        try:
            tmp_path = _create_temp(target, suffix)
        except BaseException:
            remove_empty_folders(created)
            raise
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
            remove_empty_folders(created)
            raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def make_folders(folder: str | os.PathLike) -> list[Path]:
    """``mkdir -p folder``; return the folders this call created, outermost first (none when it existed), so that
    a write that fails can take them away again with :func:`remove_empty_folders`."""
    folder, missing = Path(folder), []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            if not path.is_dir():
                raise
            continue  # another process made it meanwhile: it is theirs to keep
        created.append(path)
    return created


def remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove ``folders`` (innermost last in the list, as :func:`make_folders` returns them) that are still empty;
    a folder something was written into meanwhile stays."""
    for path in reversed(list(folders)):
        with contextlib.suppress(OSError):
            path.rmdir()


def _create_temp(target: Path, suffix: str) -> Path:
    """Create a new empty file ``.NAME.XXXXXXXX[SUFFIX].tmp`` beside ``target`` with mode 0o666 less the umask (what
    a plain ``open(target, "w")`` gives; the kernel applies the umask, so it is never read or changed)."""
    rng = random.SystemRandom()
    for _ in range(_TEMP_TRIES):
        name = f".{target.name}.{''.join(rng.choices(_TEMP_CHARS, k=8))}{suffix}.tmp"
        path = target.parent / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(errno.EEXIST, f"no free temporary file name after {_TEMP_TRIES} tries", str(target))


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> Path:
    """Fail before any work, naming ``path``, when it cannot become an output file (``folder``: an output folder):
    it is a folder (a file), or the nearest existing parent is a file or not writable. Returns ``path``."""
    path, want = Path(path), "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        raise ConfigError(f"{path}: is a {'file' if folder else 'folder'}, not an output {want}; choose another path")
    parent = path if path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{path}: cannot create the output {want}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: cannot write the output {want}: no write permission in {parent}")
    return path


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``target`` atomically."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json_object(path: str | os.PathLike, what: str, error: type[Exception] = ConfigError) -> dict[str, Any]:
    """The JSON object in ``path``; ``error`` naming the file and ``what`` it should hold when it cannot be read,
    is not JSON or is not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: cannot read {what} ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object ({what}), got {type(data).__name__}")
    return data


def append_record(fd: int, data: bytes, path: str | os.PathLike, *, fsync: bool = True,
                  hint: str = "the records before this one are kept; free some space and resume") -> None:
    """Append ``data`` (one whole record ending in a newline) to the file open for appending at descriptor ``fd``.

    On any failure (a full disk, an interrupt) the file is cut back to its previous length, so no part of the
    record stays behind; only a hard kill mid-write can leave one: a last piece without its newline, which readers
    must drop. A full disk is raised as a :class:`DiskFullError` naming ``path`` and ``hint``.
    """
    with disk_full_as_error(path, hint):
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise


def is_temp_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a temp file of :func:`atomic_path` (``.NAME.XXXXXXXX[SUFFIX].tmp``)."""
    return bool(_TEMP_NAME.match(Path(path).name))


def remove_stale_temps(folder: str | os.PathLike, *, recursive: bool = False, older_than_s: float = 0.0,
                       skip: Iterable[str] = ()) -> list[Path]:
    """Delete the temp files of :func:`atomic_path` that a killed process left in ``folder``; return them.

    With ``recursive`` sub-folders are searched too, except those named in ``skip``. Only files last modified more
    than ``older_than_s`` seconds ago go: use 0 where this process is the only writer (a run folder it owns) and
    :data:`STALE_TEMP_AGE_S` in shared folders (a stack cache), where a live writer's temp file keeps changing.
    """
    folder, skip, now, removed = Path(folder), set(skip), time.time(), []
    if not folder.is_dir():
        return removed
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip] if recursive else []
        for name in files:
            path = Path(root) / name
            if not _TEMP_NAME.match(name):
                continue
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime >= older_than_s:
                    path.unlink()
                    removed.append(path)
    return removed


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (a folder checkpoint hashes its weights file)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
