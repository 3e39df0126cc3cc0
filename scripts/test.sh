#!/usr/bin/env bash
# Set up, lint, and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks examples
# two workers (one core each; tests/conftest.py): ~1.5× faster than one process on 2 cores
# the 15 slowest tests are printed at the end (what to shrink next)
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist worksteal --durations=15 "$@"
