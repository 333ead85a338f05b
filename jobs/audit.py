"""Ray job entry: audit LLM outputs with a registry (Ray Data), then write statistics.

    ray job submit --working-dir . -- python jobs/audit.py "$PWD/answers.jsonl" \
        --registry "$PWD/runs/quickstart" --out "$PWD/audit/run1"

Same arguments as `valuecsv-ray audit`. Under `ray job submit` the working directory is a copy
of the project: give absolute paths (or URIs) for inputs, --registry and --out.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, if not pip-installed

from valuecsv_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["audit", *sys.argv[1:]])
