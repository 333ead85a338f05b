"""Suite part 'prep': the random registry that the engine, audit and serve parts share; it runs on
the CPU beside the train part (half the cores), which needs none of it.

    run(plan, work, out, budget)   # work/registry: one random evaluator per value, plan.size
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from gpu_suite_parts.common import Budget, Plan, Results


def registry_dir(work: Path) -> Path:
    return work / "registry"


def run(plan: Plan, work: Path, out: Path, budget: Budget) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # the train part runs beside it
    results = Results(out / "prep.json", budget, table=table)
    results.step("registry", 5, lambda: build_registry(registry_dir(work), plan.size))


def table(data: dict) -> list[list]:
    reg = data["steps"].get("registry", {})
    if reg.get("status") != "ok":
        return []
    how = "reused" if reg["reused"] else "built"
    return [["registry", f"{reg['evaluators']} random {reg['size']} evaluators, {reg['gb_on_disk']:.1f} GB, "
             f"{how} in {reg['wall_s']:.0f} s", "", None]]


def build_registry(path: Path, size: str) -> dict:
    """A complete random registry of `size` at `path`; one left by an earlier run of the same size
    is reused (the dry run, re-run here; the device always starts bare)."""
    from valuecsv_ray.testing.synthetic import random_registry

    manifest_file = path / "manifest.json"
    reused = False
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text())
        reused = manifest.get("complete") and manifest.get("backbone") == f"random-{size}"
    if not reused:
        shutil.rmtree(path, ignore_errors=True)
        random_registry(path, size=size)
        manifest = json.loads(manifest_file.read_text())
    size_bytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"path": str(path), "size": size, "evaluators": len(manifest["evaluators"]),
            "reused": bool(reused), "gb_on_disk": size_bytes / 1e9}
