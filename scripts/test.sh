#!/usr/bin/env bash
# Run the test suite: installs the project with its dev extras into .venv, then ruff and pytest.
#   bash scripts/test.sh                       # everything (what CI runs, via .ci/run)
#   bash scripts/test.sh --quick               # skips the integration tier (Ray, servers, killed processes)
#   bash scripts/test.sh --quick tests/collect -x   # further arguments go to pytest
# Real-data tests read ../shared/data (skipped where it is absent, required under CI=true).
set -euo pipefail
tier=()
if [ "${1:-}" = "--quick" ]; then
  shift
  tier=(-m "not integration")  # the tier is marked in tests/conftest.py
fi
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade -c constraints.txt pip   # constraints.txt: the versions CI tested (scripts/lock.sh)
python -m pip install -q -c constraints.txt torch==2.13.0   # CPU build first, so nothing pulls CUDA wheels
python -m pip install -q -c constraints.txt -e ".[dev]"
export RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false
ruff check valuecsv_ray jobs tests scripts bench
python -m pytest -q "${tier[@]}" "$@"
