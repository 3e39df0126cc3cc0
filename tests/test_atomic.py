"""lcsc.atomic under faults: a full disk or a kill mid-write keeps the previous file, leaves no temp file, and a full
disk is one DiskFullError naming the file; failed appends are cut back; leftover temp files are recognised and
cleaned."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lcsc.atomic import (
    append_record,
    atomic_path,
    is_temp_file,
    make_folders,
    remove_stale_temps,
    write_json,
    write_text,
)
from lcsc.errors import DiskFullError, LCSCError
from tests.faults import Killed, enospc, fail_writes_to, safetensors_enospc, temp_files, tree_snapshot


def _from_oserror() -> RuntimeError:
    """What ``torch.save`` to a file object raises on a full disk: a RuntimeError raised while handling OSError(28)."""
    try:
        raise enospc()
    except OSError:
        try:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")  # noqa: B904
        except RuntimeError as exc:
            return exc


@pytest.mark.parametrize("make", [enospc, safetensors_enospc, _from_oserror,
                                  lambda: OSError(errno.EDQUOT, "Disk quota exceeded")],
                         ids=["oserror", "safetensors", "torch-save", "quota"])
def test_full_disk_keeps_the_previous_file_and_is_one_clear_error(tmp_path: Path, make) -> None:
    target = write_json(tmp_path / "result.json", {"score": 1})
    before = target.read_bytes()
    with pytest.raises(DiskFullError) as info, atomic_path(target) as tmp:
        tmp.write_bytes(b'{"score": 2, "trunc')
        raise make()
    err = info.value
    assert isinstance(err, LCSCError) and isinstance(err, OSError)
    assert err.errno in (errno.ENOSPC, errno.EDQUOT)
    assert str(err).startswith(f"{target}: cannot write: ") and "\n" not in str(err)
    assert ("no space left on device" in str(err)) or ("quota" in str(err))
    assert target.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_other_errors_pass_through_unchanged(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info, atomic_path(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"x")
        raise OSError(errno.EIO, "Input/output error")
    assert type(info.value) is OSError and info.value.errno == errno.EIO
    with pytest.raises(ValueError, match="not about the disk"), atomic_path(tmp_path / "x.bin"):
        raise ValueError("not about the disk")
    assert temp_files(tmp_path) == [] and not (tmp_path / "x.bin").exists()


def test_a_failed_write_takes_away_the_folders_it_made(tmp_path: Path) -> None:
    """Issue 36: a refused input leaves no empty output (or cache) folder behind; folders that were there, or that
    something else wrote into meanwhile, stay."""
    (tmp_path / "kept").mkdir()
    before = tree_snapshot(tmp_path)
    with pytest.raises(Killed), atomic_path(tmp_path / "kept" / "a" / "b" / "x.json") as tmp:
        tmp.write_text("partial")
        raise Killed
    assert tree_snapshot(tmp_path) == before
    with pytest.raises(ValueError), atomic_path(tmp_path / "c" / "d" / "x.json"):
        (tmp_path / "c" / "other.txt").write_text("another writer's file")
        raise ValueError("refused")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["c", "c/other.txt", "kept"]
    assert make_folders(tmp_path / "kept") == [] and make_folders(tmp_path / "e" / "f") == [tmp_path / "e",
                                                                                             tmp_path / "e" / "f"]


def test_a_kill_mid_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = write_json(tmp_path / "report.json", {"rows": [1, 2]})
    before = target.read_bytes()
    with pytest.raises(Killed), atomic_path(target) as tmp:
        tmp.write_bytes(b'{"rows": [1, 2, 3')
        raise Killed
    assert target.read_bytes() == before and temp_files(tmp_path) == []


def test_the_temp_name_is_recognised_and_stale_ones_are_removed(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "ckpt-000000010.safetensors", suffix=".safetensors") as tmp:
        assert is_temp_file(tmp) and tmp.parent == tmp_path and tmp.name.startswith(".")
        assert not tmp.name.endswith(".safetensors"), "no checkpoint glob (*.safetensors) may match a temp file"
        tmp.write_bytes(b"x")
    keep = [tmp_path / n for n in ("notes.tmp", ".hidden.tmp", "ckpt-000000010.safetensors", ".x.json.abc.tmp")]
    for p in keep[:2] + keep[3:]:
        p.write_bytes(b"user file")
    old = tmp_path / ".ckpt-000000020.safetensors.ab12cd_3.safetensors.tmp"
    fresh = tmp_path / ".log.jsonl.zz99yy88.tmp"
    deep = tmp_path / "windows" / "100" / ".ckpt-000000100.safetensors.q1w2e3r4.safetensors.tmp"
    cached = tmp_path / "windows" / ".lcsc-cache" / ".stack-abc.npy.q1w2e3r4.tmp"
    for p in (old, fresh, deep, cached):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    assert remove_stale_temps(tmp_path, older_than_s=600) == [old]
    assert sorted(remove_stale_temps(tmp_path, recursive=True, skip={".lcsc-cache"})) == sorted([fresh, deep])
    assert cached.exists() and all(p.exists() for p in keep)


@pytest.mark.parametrize("on", ["write", "fsync"])
def test_a_failed_append_is_cut_back(tmp_path: Path, monkeypatch, on: str) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b'{"step": 1}\n')
    fail_writes_to(log, enospc, monkeypatch, on=on)
    with open(log, "ab", buffering=0) as fh, pytest.raises(DiskFullError, match="log.jsonl: cannot write: no space"):
        append_record(fh.fileno(), b'{"step": 2, "loss": 0.5}\n', log)
    assert log.read_bytes() == b'{"step": 1}\n'


def test_importing_lcsc_atomic_leaves_the_umask_alone() -> None:
    """Reading the umask with os.umask sets it for a moment: a thread creating a file then gets the wrong mode."""
    code = ("import os\ncalls = []\nreal = os.umask\nos.umask = lambda mask: calls.append(mask) or real(mask)\n"
            "import lcsc.atomic\nfrom lcsc.atomic import write_text\nimport sys, tempfile\n"
            "write_text(tempfile.mkdtemp() + '/f.txt', 'x')\nprint(calls)\nsys.exit(1 if calls else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"os.umask called with {done.stdout.strip()} {done.stderr[-500:]}"


@pytest.mark.parametrize("umask", [0o027, 0o002, 0o077])
def test_written_files_get_the_mode_plain_open_gives(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
        write_text(tmp_path / "atomic.txt", "x")
        with atomic_path(tmp_path / "weights.safetensors", suffix=".safetensors") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert want == 0o666 & ~umask
    for name in ("atomic.txt", "weights.safetensors"):
        assert oct(stat.S_IMODE((tmp_path / name).stat().st_mode)) == oct(want), name
