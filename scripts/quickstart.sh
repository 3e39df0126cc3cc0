#!/usr/bin/env bash
# The main job on the embedded default: set up, then record → stack → merge on scikit-learn digits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-runs/quickstart}
.venv/bin/lcsc quickstart -o "$OUT" "$@"
.venv/bin/lcsc inspect "$OUT/checkpoints"
.venv/bin/lcsc merge "$OUT/checkpoints" --coeffs "$OUT/best_coefficients.json" -o "$OUT/merged-cli.safetensors"
