#!/usr/bin/env bash
# The GPU suite (bench/gpu_suite.py): engine, Ray Train, audit and Serve on one GPU; a Markdown
# table last. Results under $OUT (default ./gpu_suite_out), the console in $OUT/gpu_suite.log.
#   on the device:  source .device-pack/bootstrap.sh && pip install --no-deps --no-build-isolation -e . \
#                   && bash bench/gpu_suite.sh
#   here (CPU):     bash bench/gpu_suite.sh --dry-run       (or GPU_SUITE_DRY_RUN=1)
#   before a device run, once here: ../shared/device/pack-ray.sh && python bench/gpu_suite.py --stage-data
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
out=${OUT:-./gpu_suite_out}
mkdir -p "$out"
if [ -z "${OUT:-}" ] && ex=$(git rev-parse --git-path info/exclude 2>/dev/null); then   # keep it out of git
  mkdir -p "$(dirname "$ex")"; grep -qx "/gpu_suite_out/" "$ex" 2>/dev/null || echo "/gpu_suite_out/" >> "$ex"
fi
python=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && python=.venv/bin/python   # here; the device has no .venv
"$python" bench/gpu_suite.py --out "$out" "$@" 2>&1 | tee "$out/gpu_suite.log"
exit "${PIPESTATUS[0]}"
