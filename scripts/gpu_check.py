"""The steps of the GPU check (``scripts/gpu_check.sh`` sets Python up, then runs this with it).

Every ``--device cuda`` path of lcsc once, small: ``lcsc train`` killed with SIGKILL mid-run and resumed (compared
with an uninterrupted run), merging on the device against the CPU, ``lcsc search`` on the recorded window (and with
``--workers 2`` where Ray and the flag exist), ``lcsc eval`` in float32 and under bf16 autocast, ``lcsc demo
--quick``, and the benchmarks merge, fid, train_speed, mixed_precision and batched_sampling. Each step runs even when
an earlier one failed, under its own time limit and the whole run's budget.

Environment: DEVICE (cuda), QUICK (1 on cpu: tiny sizes), STEPS (comma-separated subset, default all), OUT (results:
``summary.json``, ``steps.jsonl``, ``gpu_check.log``; default runs/gpu_check), WORK (scratch, emptied first; default
runs/gpu_check_work), BUDGET_S (seconds for all steps; later steps are skipped). Exit code 1 when a step failed, 2
when STEPS names an unknown step (``--check-steps``: that check alone; it needs only the standard library).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEVICE = os.environ.get("DEVICE", "cuda")
QUICK = os.environ.get("QUICK", "1" if DEVICE == "cpu" else "0") == "1"
OUT = Path(os.environ.get("OUT") or ROOT / "runs" / "gpu_check")
WORK = Path(os.environ.get("WORK") or ROOT / "runs" / "gpu_check_work")
BUDGET_S = float(os.environ.get("BUDGET_S", "900" if QUICK else "480"))  # the device allows 600 s a command
LOG = OUT / "gpu_check.log"
SKIP = "skipped"

# sizes: (full on the GPU, QUICK for the CPU side)
SIZES = {
    "channels": (32, 8), "batch": (128, 32), "iters": (1200, 80), "window": (300, 40), "interval": (30, 8),
    "ema_at": ("300,600,900", "20,40,60"), "kill_at": (650, 30),
    "evals": (16, 6), "generation": (4, 3), "search_samples": (500, 64), "search_nfe": (4, 1),
    "eval_samples": (1000, 64), "eval_nfe": (10, 2),
}
S = {k: v[1] if QUICK else v[0] for k, v in SIZES.items()}
BENCH_ARGS = {  # benchmark flags, full and QUICK (each also gets --device)
    "merge": (["--quick"], ["--quick", "--repeats", "1"]),
    "fid": (["--repeats", "1", "--inception-images", "512"], ["--d", "256", "--n", "512", "--repeats", "1",
                                                              "--inception-images", "4"]),
    "train_speed": (["--iters", "50", "--rounds", "2", "--samples", "2048"],
                    ["--iters", "5", "--rounds", "1", "--samples", "64"]),
    "mixed_precision": (["--seeds", "4"], ["--quick"]),
    "batched_sampling": (["--samples", "1000", "--generation", "8", "--repeats", "2"],
                         ["--samples", "64", "--generation", "2", "--repeats", "1"]),
}


DEMO_TINY = ["--iterations", "160", "--window", "40", "--interval", "5", "--channels", "8", "--dm-search-evals", "8",
             "--cm-search-evals", "8", "--search-samples", "64", "--eval-samples", "64", "--eval-seeds", "2"]


def log(text: str) -> None:
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def run(args: list, timeout: float, cwd: Path = ROOT) -> tuple[int, str]:
    """Run a command (its output into the log); (exit code, stdout). 124: it ran past ``timeout`` and was killed
    with everything it started (its own process group)."""
    args = [str(a) for a in args]
    log(f"$ {' '.join(args)}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        log(f"{out}{err}[timed out after {timeout:.0f} s]")
        return 124, out
    log(f"{out}{err}[exit {proc.returncode}]")
    return proc.returncode, out


def lcsc(*args, timeout: float) -> tuple[int, str]:
    return run([PY, "-m", "lcsc", *args], timeout)


def last_json(stdout: str) -> dict | None:
    """The last line of ``stdout`` that is a JSON object."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def logged_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "log.jsonl").read_text().splitlines()
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def train_cmd(out: Path) -> list:
    return [PY, "-m", "lcsc", "train", "dm", "--iterations", S["iters"], "--batch-size", S["batch"], "--channels",
            S["channels"], "--record-window", S["window"], "--record-interval", S["interval"], "--ema-at", S["ema_at"],
            "--sample-count", "0", "--device", DEVICE, "-o", out]


def kill_mid_run(out: Path, timeout: float) -> tuple[bool, int]:
    """Start training, SIGKILL it once its log passes ``kill_at``; (killed, step logged when killed)."""
    args = [str(a) for a in train_cmd(out)]
    log(f"$ {' '.join(args)}   (SIGKILL after step {S['kill_at']})")
    with open(LOG, "a") as fh:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=fh, stderr=fh, start_new_session=True)
        deadline, step = time.monotonic() + timeout, 0
        while proc.poll() is None and time.monotonic() < deadline:
            step = logged_step(out)
            if step >= S["kill_at"]:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                log(f"[killed at logged step {step}]")
                return True, step
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log(f"[not killed: exit {proc.returncode} at logged step {logged_step(out)}]")
    return False, logged_step(out)


def compare_checkpoints(a: Path, b: Path) -> dict:
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    same = x.keys() == y.keys() and all(x[k].equal(y[k]) for k in x)
    diff = max(float((x[k].double() - y[k].double()).abs().max()) for k in x if x[k].is_floating_point())
    return {"bit_identical": bool(same), "max_abs_diff": diff}


def step_env(timeout: float) -> tuple[bool | None, dict]:
    code = ("import json, sys, torch; d = sys.argv[1]; ok = d == 'cpu' or (d.startswith('cuda') and "
            "torch.cuda.is_available()); print(json.dumps({'python': sys.version.split()[0], 'torch': "
            "torch.__version__, 'cuda': torch.version.cuda, 'available': ok, 'name': torch.cuda.get_device_name() "
            "if ok and d != 'cpu' else 'cpu', 'threads': torch.get_num_threads()}))")
    rc, out = run([PY, "-c", code, DEVICE], timeout)
    info = last_json(out) or {}
    return rc == 0 and bool(info.get("available")), info


def step_train_kill_resume(timeout: float) -> tuple[bool | None, dict]:
    run_dir, ref = WORK / "dm", WORK / "dm_uninterrupted"
    t0 = time.monotonic()
    killed, at = kill_mid_run(run_dir, timeout / 3)
    rc, out = run(train_cmd(run_dir), timeout - (time.monotonic() - t0))
    resumed_at = next((int(line.split()[-1]) for line in out.splitlines() if line.startswith("resuming ")), None)
    last_step = logged_step(run_dir)
    res = {"killed": killed, "killed_at_logged_step": at, "resumed_at": resumed_at, "resume_rc": rc,
           "final_step": last_step, "iterations": S["iters"]}
    rc_ref, _ = run(train_cmd(ref), timeout - (time.monotonic() - t0))
    if rc == 0 and rc_ref == 0:
        res |= compare_checkpoints(run_dir / "last.safetensors", ref / "last.safetensors")
    ok = killed and rc == 0 and resumed_at is not None and 0 < resumed_at < S["iters"] and last_step == S["iters"]
    if DEVICE == "cpu":  # the README's claim: a resumed run equals an uninterrupted one (on CUDA only reported)
        ok = ok and res.get("bit_identical", False)
    return ok, res


MERGE_CODE = """
import json, sys, torch
from lcsc import CheckpointStack
from lcsc.merge import merge_many
stack = CheckpointStack.open(sys.argv[1], progress=False)
A = torch.randn(4, stack.K, generator=torch.Generator().manual_seed(0), dtype=torch.float64) / stack.K + 1 / stack.K
cpu, dev = merge_many(stack, A), merge_many(stack, A, device=sys.argv[2])
print(json.dumps({"K": stack.K, "P": stack.P, "out_device": str(dev.device),
                  "max_abs_diff": float((dev.cpu() - cpu).abs().max())}))
"""


def step_merge_device(timeout: float) -> tuple[bool | None, dict]:
    rc, out = run([PY, "-c", MERGE_CODE, WORK / "dm" / "windows" / str(S["iters"]), DEVICE], timeout)
    res = last_json(out) or {"rc": rc}
    ok = rc == 0 and res.get("max_abs_diff", 1.0) < 1e-4 and res["out_device"].split(":")[0] == DEVICE.split(":")[0]
    return ok, res


def search_args(out: Path) -> list:
    return ["search", WORK / "dm" / "windows" / str(S["iters"]), "--objective", "fd-digits", "--evals", S["evals"],
            "--generation-size", S["generation"], "--samples", S["search_samples"], "--nfe", S["search_nfe"],
            "--device", DEVICE, "-o", out]


def search_result(rc: int, out: Path) -> tuple[bool, dict]:
    try:
        card = json.loads((out / "provenance.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False, {"rc": rc, "error": "no provenance.json"}
    held = (card.get("held_out") or {}).get("spaces", {})
    res = {"best_score": card["best"]["score"], "best_initial_score": card["best_initial"]["score"],
           "evaluations": card["evaluations"], "wall_time_s": card["wall_time_s"],
           "held_out_gain": {s: r["gain_vs_best_initial"] for s, r in held.items()}}
    return rc == 0 and math.isfinite(res["best_score"]), res


def step_search(timeout: float) -> tuple[bool | None, dict]:
    out = WORK / "search"
    rc, _ = lcsc(*search_args(out), timeout=timeout)
    return search_result(rc, out)


def step_search_grad(timeout: float) -> tuple[bool | None, dict]:
    """The gradient search (issue 33) on the device: differentiable sampling, the projection, the guard."""
    out = WORK / "search_grad"
    rc, _ = lcsc("search", WORK / "dm" / "windows" / str(S["iters"]), "--objective", "fd-digits", "--optimizer", "grad",
                 "--steps", 4, "--batch-size", 64, "--samples", S["search_samples"], "--nfe", S["search_nfe"],
                 "--device", DEVICE, "-o", out, timeout=timeout)
    return search_result(rc, out)


def step_search_workers(timeout: float) -> tuple[bool | None, dict]:
    if run([PY, "-c", "import ray"], 60)[0] != 0:
        return None, {"note": "ray is not importable here: skipped"}
    if "--workers" not in lcsc("search", "--help", timeout=60)[1]:
        return None, {"note": "this lcsc search has no --workers flag yet: skipped"}
    out = WORK / "search_workers"
    rc, _ = lcsc(*search_args(out), "--workers", "2", timeout=timeout)
    return search_result(rc, out)


def step_eval(timeout: float) -> tuple[bool | None, dict]:
    t0, res, ok = time.monotonic(), {}, True
    for mode in ("off", "bf16"):
        path = WORK / "eval" / f"eval_{mode}.json"
        rc, _ = lcsc("eval", WORK / "dm", "--samples", S["eval_samples"], "--nfe", S["eval_nfe"], "--metrics",
                     "fd,kid,pr", "--autocast", mode, "--device", DEVICE, "-o", path,
                     timeout=timeout - (time.monotonic() - t0))
        try:
            rows = json.loads(path.read_text())["rows"]
            res[mode] = {Path(r["checkpoint"]).parent.name + "/" + Path(r["checkpoint"]).name: r["fd"] for r in rows}
        except (OSError, json.JSONDecodeError, KeyError):
            res[mode] = None
        ok = ok and rc == 0 and res[mode] is not None
    return ok, res


def step_demo_quick(timeout: float) -> tuple[bool | None, dict]:
    out = WORK / "demo"
    rc, stdout = lcsc("demo", "--quick", *(DEMO_TINY if QUICK else []), "--device", DEVICE, "-o", out, timeout=timeout)
    try:
        report = json.loads((out / "report" / "report.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False, {"rc": rc, "error": "no report/report.json"}
    total = next((line for line in stdout.splitlines() if line.startswith("total ")), None)
    return rc == 0, {"keys": sorted(report)[:12], "rows": len(report.get("rows", [])), "total": total}


def bench(name: str):
    def step(timeout: float) -> tuple[bool | None, dict]:
        extra = BENCH_ARGS[name][1 if QUICK else 0]
        workdir = ["--workdir", WORK / "merge_bench"] if name == "merge" else []
        rc, out = run([PY, ROOT / "benchmarks" / f"{name}.py", *extra, *workdir, "--device", DEVICE], timeout)
        res = last_json(out)
        return rc == 0 and res is not None, res or {"rc": rc}

    return step


STEPS = {  # name: (function, its time limit in seconds), in the order they run; the demo, the longest, last
    "env": (step_env, 120), "train_kill_resume": (step_train_kill_resume, 240), "merge_device": (step_merge_device, 90),
    "search": (step_search, 150), "search_grad": (step_search_grad, 150), "search_workers": (step_search_workers, 150), "eval": (step_eval, 120),
    "bench_merge": (bench("merge"), 120), "bench_fid": (bench("fid"), 120),
    "bench_train_speed": (bench("train_speed"), 120), "bench_mixed_precision": (bench("mixed_precision"), 180),
    "bench_batched_sampling": (bench("batched_sampling"), 120), "demo_quick": (step_demo_quick, 300),
}


def run_step(name: str, start: float) -> dict:
    fn, limit = STEPS[name]
    left = BUDGET_S - (time.monotonic() - start)
    if left < 5:
        return {"step": name, "status": SKIP, "wall_s": 0.0, "result": {"note": f"budget of {BUDGET_S:.0f} s spent"}}
    log(f"\n=== {name} (limit {min(limit, left):.0f} s)")
    t0 = time.monotonic()
    try:
        ok, result = fn(min(limit, left))
    except Exception as exc:  # noqa: BLE001 - a broken step is a failed step; the others still run
        ok, result = False, {"error": f"{type(exc).__name__}: {exc}"}
    status = SKIP if ok is None else ("passed" if ok else "failed")
    record = {"step": name, "status": status, "wall_s": round(time.monotonic() - t0, 2), "result": result}
    with open(OUT / "steps.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    print(f"{status:>7}  {name:<24} {record['wall_s']:7.1f} s  {json.dumps(result)[:160]}", flush=True)
    return record


def chosen_steps() -> list[str] | None:
    """The steps STEPS names, in its order; None (the unknown ones named on stderr) when one is not a step."""
    names = [s.strip() for s in os.environ.get("STEPS", ",".join(STEPS)).split(",") if s.strip()]
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        print(f"gpu_check: unknown STEPS {unknown}; choose from {', '.join(STEPS)}", file=sys.stderr)
        return None
    return names


def main() -> int:
    names = chosen_steps()
    if names is None:
        return 2
    if "--check-steps" in sys.argv[1:]:  # gpu_check.sh, before its Python set-up: STEPS only, nothing written
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "steps.jsonl").unlink(missing_ok=True)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    start = time.monotonic()
    print(f"gpu_check: device {DEVICE}, {'QUICK' if QUICK else 'full'} sizes, budget {BUDGET_S:.0f} s, out {OUT}")
    records = [run_step(n, start) for n in names]
    count = {s: sum(r["status"] == s for r in records) for s in ("passed", "failed", SKIP)}
    env = next((r["result"] for r in records if r["step"] == "env"), {})
    summary = {"ok": count["failed"] == 0, **count, "device": DEVICE, "quick": QUICK, "env": env,
               "wall_s": round(time.monotonic() - start, 1), "budget_s": BUDGET_S,
               "steps": {r["step"]: {"status": r["status"], "wall_s": r["wall_s"]} for r in records}}
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("ok", "passed", "failed", SKIP, "wall_s", "device")}))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
