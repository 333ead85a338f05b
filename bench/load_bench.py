"""Load benchmark: how long `Ensemble.from_registry` takes, phase by phase, cold and warm.

    python bench/load_bench.py                                  # CPU, 12 random BERT-base (~4.9 GB)
    python bench/load_bench.py --registry runs/quickstart --device cuda --compile

Loads the registry three times in one process, each into a fresh engine:
  first   the node's verification cache is empty: every file is hashed (in parallel threads);
  second  the cache knows the files: nothing is hashed (what a restarted replica or actor pays);
  full    VALUECSV_FULL_VERIFY=1: every file hashed again, as on a first load.
Prints each load's phases (engine.load_phases) and wall time. The verification cache lives in a
fresh folder (--cache); the OS page cache is whatever it is (warm right after a build), so disk
reads are not timed. Random weights built with `valuecsv_ray.testing.synthetic` (--registry-dir, outside
the repo, reused when there) unless `--registry DIR` names a registry. Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import tempfile
import time
from pathlib import Path

from valuecsv_ray.registry.store import FULL_VERIFY_ENV

LOADS = ("first", "second", "full")
DEFAULT_DIR = Path(tempfile.gettempdir()) / "valuecsv-load-bench" / "registry"


def random_base_registry(path: Path) -> Path:
    """Twelve random BERT-base evaluators at `path`, built once and reused."""
    from valuecsv_ray.testing.synthetic import random_registry

    if not (path / "manifest.json").is_file():
        print(f"building 12 random BERT-base evaluators in {path} (minutes) ...", flush=True)
        random_registry(path, size="base")
    return path


def timed_loads(registry: Path, cache: Path, **engine_kwargs) -> dict[str, dict[str, float]]:
    """{load: {phase: seconds, ..., "wall": seconds}} for the three loads, in a fresh `cache`."""
    from valuecsv_ray.scoring.engine import Ensemble

    os.environ["VALUECSV_CACHE"] = str(cache)
    results = {}
    for load in LOADS:
        if load == "full":
            os.environ[FULL_VERIFY_ENV] = "1"
        start = time.perf_counter()
        engine = Ensemble.from_registry(registry, **engine_kwargs)
        results[load] = {**engine.load_phases, "wall": time.perf_counter() - start}
        del engine
        gc.collect()
    os.environ.pop(FULL_VERIFY_ENV, None)
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    """Phases as rows (in the order they ran), loads as columns, seconds."""
    phases = list(dict.fromkeys(p for r in results.values() for p in r if p != "wall"))
    width = max(len(p) for p in [*phases, "sum of phases"])
    lines = [f"{'phase':<{width}}  " + "  ".join(f"{load:>8}" for load in results)]
    for phase in [*phases, "sum of phases", "wall"]:
        cells = [r.get(phase) if phase != "sum of phases" else sum(v for k, v in r.items() if k != "wall")
                 for r in results.values()]
        shown = [f"{'-':>8}" if c is None else f"{c:8.2f}" for c in cells]
        lines.append(f"{phase:<{width}}  " + "  ".join(shown))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=Path, help="a registry to load (default: random BERT-base)")
    parser.add_argument("--registry-dir", type=Path, default=DEFAULT_DIR, help="where the random one lives")
    parser.add_argument("--cache", type=Path, help="VALUECSV_CACHE for the run (default: a fresh temp dir)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--forward", default="auto", help="padded, varlen, slim or auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the slim forward")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    registry = args.registry or random_base_registry(args.registry_dir)
    size = sum(f.stat().st_size for f in registry.rglob("*") if f.is_file())
    with tempfile.TemporaryDirectory(prefix="valuecsv-cache-") as fresh:
        results = timed_loads(registry, args.cache or Path(fresh), device=args.device, forward=args.forward,
                              compile=args.compile)
    print(f"\n{registry} ({size / 1e9:.2f} GB), device {args.device}, forward {args.forward}"
          f"{', compiled' if args.compile else ''}; seconds, {os.cpu_count()} CPUs")
    print(table(results))


if __name__ == "__main__":
    main()
