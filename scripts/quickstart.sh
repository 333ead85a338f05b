#!/usr/bin/env bash
# Quickstart: install valuecsv-ray, start a local Ray instance (token auth on, dashboard on
# 127.0.0.1 only), submit jobs/train_all.py with `ray job submit` on the annotated sample
# that ships with the package and the offline tiny backbone, and print the metrics table.
# Needs only Python 3.10+ and the package registry; about 8 minutes on 2 CPU cores.
# It refuses to run beside another Ray instance: its `ray stop` at the end would stop that too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade -c constraints.txt pip   # constraints.txt: the versions CI tested (scripts/lock.sh)
python -m pip install -q -c constraints.txt torch==2.13.0   # the CPU build; an unpinned torch pulls CUDA wheels
python -m pip install -q -c constraints.txt -e .

ray_status=$(ray status 2>&1 || true)
if ! grep -q "Could not find any running Ray instance" <<<"$ray_status"; then
    echo "error: a Ray instance is already running on this machine; the Quickstart starts and" >&2
    echo "stops its own. Stop the other one first (ray stop), then run this again." >&2
    exit 1
fi

export RAY_AUTH_MODE=token                # clients (ray job submit) must send the token
ray get-auth-token --generate >/dev/null  # creates ~/.ray/auth_token once
ray start --head --num-cpus=2 --dashboard-host=127.0.0.1 --disable-usage-stats >/dev/null
trap 'ray stop --force >/dev/null 2>&1 || true' EXIT

ray job submit --working-dir "$ROOT" -- \
    python jobs/train_all.py --config configs/train/quickstart.yaml --runs-dir "$ROOT/runs"

echo
valuecsv-ray registry show "$ROOT/runs/quickstart"
