"""Benchmark: bytes read and time of ``lcsc inspect`` before (the stack built to describe it) and after (headers only).

Writes K float32 safetensors checkpoints of MB megabytes each (4 tensors apiece) into a work dir, then runs
``lcsc inspect`` on them in a fresh interpreter twice: with the sources of ``--before-src`` (default: ``git archive
HEAD src`` of this repository, unpacked into the work dir) and with this checkout's ``src``. Each run is measured
inside its process from just before ``main()`` to just after it (imports left out):

  rchar        bytes through read syscalls (/proc/self/io; the page cache does not hide these)
  read_bytes   bytes the kernel fetched from the disk for it (0 when the files sit in the page cache)
  fault_bytes  (minor + major page faults) × 4096: pages touched through mmap (and fresh heap pages)
  bytes        rchar + fault_bytes, the measure compared; seconds, the wall time of ``main()``

The before run builds the stack cache (.lcsc-cache beside the checkpoints); it is deleted before the after run.
Everything written is deleted at the end unless ``--keep``. The last line printed is one JSON object:
{"before_bytes", "after_bytes", "ratio", "before_s", "after_s", …}. Target: ratio ≤ 0.01.

Run:  .venv/bin/python benchmarks/inspect_headers.py [--K 20 --mb 100 --before-src DIR --workdir DIR --keep]
      .venv/bin/python benchmarks/inspect_headers.py --quick      # K=4 of 8 MB: seconds
Needs about 2 × K × MB of free disk in the work dir (the checkpoints and the before run's cache). Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
WRAPPER = r"""
import contextlib, io, json, resource, sys, time
from lcsc.cli.main import main

def snap():
    ru, proc = resource.getrusage(resource.RUSAGE_SELF), dict(
        line.split(": ") for line in open("/proc/self/io").read().splitlines())
    return {"rchar": int(proc["rchar"]), "read_bytes": int(proc["read_bytes"]), "faults": ru.ru_minflt + ru.ru_majflt,
            "t": time.perf_counter()}

out, argv = sys.argv[1], sys.argv[2:]
with contextlib.redirect_stdout(io.StringIO()) as text:
    a = snap()
    code = main(argv)
    b = snap()
json.dump({"code": code, "stdout": text.getvalue(), **{k: b[k] - a[k] for k in a}}, open(out, "w"))
"""


def write_checkpoints(folder: Path, k: int, mb: int) -> int:
    """K checkpoints of ``mb`` MB of float32 each (4 tensors); returns the bytes written."""
    folder.mkdir(parents=True)
    n = mb * 10**6 // 4 // 4
    for step in range(1, k + 1):
        save_file({f"block{i}.weight": torch.full((n,), float(step + i)) for i in range(4)},
                  str(folder / f"ckpt-{100 * step:09d}.safetensors"), metadata={"step": str(100 * step)})
    return sum(p.stat().st_size for p in folder.iterdir())


def head_sources(dest: Path) -> Path:
    """``src`` as committed at HEAD (``git archive``; the checkout is not touched), unpacked under ``dest``."""
    archive = dest / "head-src.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", "HEAD", "src"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python ≥ 3.12 (and recent 3.10/3.11 patch releases)
            tar.extractall(dest / "head", filter="data")
        else:
            tar.extractall(dest / "head")  # noqa: S202 - our own repository's archive
    return dest / "head" / "src"


def measure(src: Path, folder: Path, result: Path) -> dict:
    """One ``lcsc inspect`` run with ``src`` on the path, measured inside its own process."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(result), "inspect", str(folder)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"inspect with {src} failed:\n{proc.stderr}")
    run = json.loads(result.read_text())
    if run["code"] != 0:
        raise SystemExit(f"inspect with {src} exited {run['code']}:\n{proc.stderr}")
    run["fault_bytes"] = run.pop("faults") * PAGE
    run["bytes"], run["seconds"] = run["rchar"] + run["fault_bytes"], run.pop("t")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, default=20, help="checkpoints (default 20)")
    parser.add_argument("--mb", type=int, default=100, help="megabytes per checkpoint (default 100)")
    parser.add_argument("--quick", action="store_true", help="K=4 checkpoints of 8 MB")
    parser.add_argument("--before-src", type=Path, default=None, help="src folder of the version to compare with "
                        "(default: git archive HEAD src)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temp dir in /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep what was written")
    args = parser.parse_args()
    k, mb = (4, 8) if args.quick else (args.K, args.mb)
    work = Path(tempfile.mkdtemp(prefix="lcsc-inspect-", dir=args.workdir))
    try:
        folder = work / "ckpts"
        disk = write_checkpoints(folder, k, mb)
        before_src = args.before_src or head_sources(work)
        before = measure(before_src, folder, work / "before.json")
        shutil.rmtree(folder / ".lcsc-cache", ignore_errors=True)
        after = measure(REPO / "src", folder, work / "after.json")
        if (folder / ".lcsc-cache").exists():
            raise SystemExit("the after run wrote a cache folder")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{k} checkpoints × {mb} MB = {disk / 1e9:.2f} GB on disk; before: {before_src}, after: {REPO / 'src'}")
    for name, run in (("before", before), ("after", after)):
        print(f"{name:>6}: {run['seconds']:.3f} s, rchar {run['rchar']:,} B, fault pages {run['fault_bytes']:,} B, "
              f"read_bytes (from disk) {run['read_bytes']:,} B")
    print(json.dumps({"before_bytes": before["bytes"], "after_bytes": after["bytes"],
                      "ratio": round(after["bytes"] / before["bytes"], 6), "before_s": round(before["seconds"], 3),
                      "after_s": round(after["seconds"], 3), "before_rchar": before["rchar"],
                      "after_rchar": after["rchar"], "before_fault_bytes": before["fault_bytes"],
                      "after_fault_bytes": after["fault_bytes"], "checkpoints_bytes": disk}))


if __name__ == "__main__":
    main()
