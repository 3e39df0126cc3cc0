#!/usr/bin/env bash
# The GPU check: every `--device cuda` path of lcsc once, small, in a few minutes on one H100/H200 (steps in
# scripts/gpu_check.py). Results in $OUT (default runs/gpu_check): summary.json (which steps passed, their wall
# times), steps.jsonl (each step's JSON result), gpu_check.log (everything printed). Exit code 1 if a step failed
# (all steps run regardless).
#
#   bash scripts/gpu_check.sh                        # DEVICE=cuda, full sizes
#   DEVICE=cpu bash scripts/gpu_check.sh             # the CPU side, QUICK (tiny) sizes
#   DEVICE=cpu STEPS=env,train_kill_resume,search bash scripts/gpu_check.sh   # a subset
#
# Python: .venv when it imports lcsc's needs and sees the device; else, when the system python3 has a CUDA torch (the
# GPU machine, which has no network), a venv in $GPU_VENV with --system-site-packages over it and the packages it
# lacks installed from ./.whl (make them here first with `bash scripts/gpu_wheels.sh`, carry .whl), or python3
# itself with them on PYTHONPATH when no venv can be made; else scripts/setup.sh (the CPU torch). lcsc runs from
# src/ (PYTHONPATH), so nothing is built.
set -uo pipefail
cd "$(dirname "$0")/.."
export DEVICE=${DEVICE:-cuda}
export OUT=${OUT:-runs/gpu_check}
GPU_VENV=${GPU_VENV:-/tmp/lcsc-gpu-venv}

# unknown STEPS are refused now, not after the set-up below (imports, or a venv and wheels on the GPU machine); the
# check needs only the standard library, so any python3 does (without one, gpu_check.py refuses them after set-up)
if command -v python3 >/dev/null 2>&1; then
  python3 scripts/gpu_check.py --check-steps
  [ $? -eq 2 ] && exit 2
fi
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"

sees_device() {  # $1: a python that imports lcsc's needs and has the device
  "$1" -c '
import sys
import cmaes, diffusers, safetensors, scipy, sklearn, torch  # noqa: F401
dev = sys.argv[1]
sys.exit(0 if dev == "cpu" or (dev.startswith("cuda") and torch.cuda.is_available()) else 1)
' "$DEVICE" >>"$LOG" 2>&1
}

missing_for() {  # the pip names of lcsc's needs that $1 cannot import
  local missing=""
  for pair in diffusers:diffusers cmaes:cmaes safetensors:safetensors scipy:scipy sklearn:scikit-learn \
      matplotlib:matplotlib PIL:pillow tqdm:tqdm psutil:psutil; do
    "$1" -c "import ${pair%%:*}" 2>/dev/null || missing="$missing ${pair##*:}"
  done
  echo "$missing"
}

install_into() {  # $1: a folder on the path; $2…: pip names (offline from ./.whl when it is there), by python3's pip
  local target=$1
  shift
  [ $# -gt 0 ] || return 0
  echo "installing into $target: $*" >>"$LOG"
  local src=()
  [ -d .whl ] && src=(--no-index --find-links .whl)
  python3 -m pip install -q --no-deps --no-compile --disable-pip-version-check --target "$target" "${src[@]}" "$@" \
    >>"$LOG" 2>&1
}

gpu_venv() {  # a venv over the system python3's CUDA torch (no torch install) plus what it lacks
  python3 -m venv --system-site-packages --without-pip "$GPU_VENV" >>"$LOG" 2>&1 || return 1
  local site
  site=$("$GPU_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
  # python3 may itself be a venv, whose packages --system-site-packages does not reach: add its site dirs too
  python3 -c '
import site, sys
open(sys.argv[1], "w").write("".join(f"import site; site.addsitedir({d!r})\n" for d in site.getsitepackages()))
' "$site/_host_site.pth" || return 1
  # shellcheck disable=SC2046
  install_into "$site" $(missing_for "$GPU_VENV/bin/python")
}

PY=""
if [ -x .venv/bin/python ] && sees_device .venv/bin/python; then
  PY=.venv/bin/python
elif python3 -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' >/dev/null 2>&1; then
  echo "setup: venv $GPU_VENV over the system python3's CUDA torch" | tee -a "$LOG"
  if gpu_venv && sees_device "$GPU_VENV/bin/python"; then
    PY="$GPU_VENV/bin/python"
  else  # no venv there: python3 itself, with what it lacks in a folder on PYTHONPATH
    echo "setup: no venv; python3 with $GPU_VENV-site on PYTHONPATH" | tee -a "$LOG"
    # shellcheck disable=SC2046
    install_into "$GPU_VENV-site" $(missing_for python3)
    export PYTHONPATH="$GPU_VENV-site${PYTHONPATH:+:$PYTHONPATH}"
    sees_device python3 && PY=python3
  fi
else
  echo "setup: scripts/setup.sh (CPU torch)" | tee -a "$LOG"
  bash scripts/setup.sh >>"$LOG" 2>&1 && PY=.venv/bin/python
fi
if [ -z "$PY" ]; then
  echo "gpu_check: no usable Python (see $LOG)" >&2
  echo '{"ok": false, "error": "setup failed: no usable Python"}' >"$OUT/summary.json"
  exit 1
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" scripts/gpu_check.py
