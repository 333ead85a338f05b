"""Ray job entry: collect LLM answers to prompt suites from OpenAI-compatible endpoints (Ray Data).

    ray job submit --working-dir . -- python jobs/collect.py --suite quest100 \
        --data-dir "$PWD/data" --endpoints "$PWD/endpoints.yaml" --out "$PWD/eval/collect"

Same arguments as `valuecsv-ray collect`. Under `ray job submit` the working directory is a copy
of the project: give absolute paths for --endpoints, --data-dir, suite files and --out. The
job's driver reads the API keys from the environment variables the endpoints file names (set them
where `ray start --head` runs, or in the job's runtime_env env_vars on a cluster you trust) and
hands them to the request actors in memory only.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, if not pip-installed

from valuecsv_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["collect", *sys.argv[1:]])
