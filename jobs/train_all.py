"""Ray job entry: train the twelve evaluators (or the multi-label one) and print the metrics.

    ray job submit --working-dir . -- python jobs/train_all.py --config configs/train/quickstart.yaml \
        --runs-dir "$PWD/runs"

Same flags as `valuecsv-ray train` (config file, then flags, then --set KEY=VALUE). Under
`ray job submit` the working directory is a copy of the project: give absolute paths for
--runs-dir and --data so the registry lands where you can find it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, if not pip-installed

from valuecsv_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
