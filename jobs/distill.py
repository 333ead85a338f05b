"""Ray job entry: distil a registry's evaluators into one student and print its agreement.

    ray job submit --working-dir . -- python jobs/distill.py "$PWD/answers.jsonl" \
        --config configs/distill/tiny.yaml --registry "$PWD/runs/valuecsv5000-tiny"

Same arguments as `valuecsv-ray distill` (corpus files, config file, flags, --set KEY=VALUE). Under
`ray job submit` the working directory is a copy of the project: give absolute paths for the
registry and the corpus so the student lands next to the evaluators you can find.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, if not pip-installed

from valuecsv_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["distill", *sys.argv[1:]])
