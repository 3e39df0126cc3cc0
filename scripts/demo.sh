#!/usr/bin/env bash
# The main job on the embedded default: set up, then `lcsc demo` (DM + CM on scikit-learn digits, EMA / EMA* / LCSC
# on held-out noise, a report in $OUT/report). Extra arguments go to `lcsc demo` (e.g. --quick, --cd, --inception).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-runs/demo}
.venv/bin/lcsc demo -o "$OUT" "$@"
