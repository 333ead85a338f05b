#!/usr/bin/env bash
# Refresh constraints.txt: the exact versions `scripts/quickstart.sh`, `scripts/test.sh` and CI install.
#   bash scripts/lock.sh        # resolves today's newest releases allowed by pyproject.toml, in a new venv
# Then run `bash scripts/test.sh` and commit constraints.txt with the change it tested. Without this,
# a fresh install resolves whatever is newest on the day (seen: transformers 5.25 broke a test that
# passed with the version CI had seen).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q torch==2.13.0   # the CPU build; an unpinned torch pulls CUDA wheels
"$venv/bin/python" -m pip install -q ".[dev]"
{
    echo "# The versions CI tested: pip install -c constraints.txt ... (scripts/test.sh, scripts/quickstart.sh)."
    echo "# Written by scripts/lock.sh on $(date -u +%Y-%m-%d) with $("$venv/bin/python" --version); refresh with it."
    # torch's local label (+cpu) is dropped: 'torch==2.13.0' admits the CPU build the scripts install first
    "$venv/bin/python" -m pip freeze --all | grep -v -i -E '^(valuecsv-ray|valuecsv_ray)( @|==)|^# Editable|^-e ' \
        | sed -E 's/^(torch==[^+]+)\+.*/\1/' | LC_ALL=C sort -f
} > constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
echo "wrote constraints.txt ($(grep -c '==' constraints.txt) pins)"
