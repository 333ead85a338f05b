"""Suite part 'prep': the random registry that the engine, audit and serve parts share; it runs on
the CPU beside the train part (half the cores), which needs none of it.

    run(plan, work, out, budget)   # work/registry: one random evaluator per value, plan.size
                                   # work/registry/students/student: one random multi-label model
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
    results.step("student", 5, lambda: build_student(registry_dir(work), plan.size))


def table(data: dict) -> list[list]:
    reg = data["steps"].get("registry", {})
    if reg.get("status") != "ok":
        return []
    how = "reused" if reg["reused"] else "built"
    rows = [["registry", f"{reg['evaluators']} random {reg['size']} evaluators, {reg['gb_on_disk']:.1f} GB, "
             f"{how} in {reg['wall_s']:.0f} s", "", None]]
    if (student := data["steps"].get("student", {})).get("status") == "ok":
        rows.append(["student", f"1 random {student['size']} multi-label model ({student['outputs']} "
                     f"outputs), built in {student['wall_s']:.0f} s", "", None])
    return rows


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


def student_dir(work: Path) -> Path:
    return registry_dir(work) / "students" / "student"


def build_student(registry: Path, size: str) -> dict:
    """A random student of the registry (`registry.students`): one multi-label model of `size` with an
    output per value, recorded as agreeing fully (its scores mean nothing; the suite times it)."""
    import time

    import torch
    from transformers import BertForSequenceClassification

    from valuecsv_ray.backbone import quiet_hf_progress, tiny_config, tiny_tokenizer
    from valuecsv_ray.registry import manifest as reg
    from valuecsv_ray.testing.synthetic import base_config

    teacher = reg.load_registry(registry)
    values, path = teacher.manifest["values"], student_dir(registry.parent)
    shutil.rmtree(path, ignore_errors=True)
    config = tiny_config(len(values), True) if size == "tiny" else base_config()
    config.num_labels, config.problem_type = len(values), "multi_label_classification"
    job = {"config": {"name": "student", "backbone": f"random-{size}", "mode": "multilabel",
                      "teacher_registry_id": teacher.registry_id},
           "data": {"sha256": "0" * 64, "source": "synthetic"}, "split": {"seed": 0, "counts": {}},
           "versions": reg.versions(), "created": time.time(), "taxonomy": teacher.taxonomy.to_dict()}
    reg.start_job(path, job)
    with torch.random.fork_rng(devices=[]), quiet_hf_progress():
        torch.manual_seed(7)
        BertForSequenceClassification(config).save_pretrained(path / "final")
        tiny_tokenizer().save_pretrained(path / "final")
    none = {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "roc_auc": None, "n_test": 0,
            "n_test_positive": 0}
    result = {"window": {"max_length": 512, "stride": 255, "aggregate": "max"}, "evaluators": {
        v: {"threshold": 0.5, "temperature": 1.0, "metrics": none, "ensemble_metrics": none,
            "agreement": {"decision": 1.0, "mean_abs_dp": 0.0, "n_texts": 0}} for v in values}}
    reg.add_evaluator(path, "multilabel", path / "final", result, job)
    shutil.rmtree(path / "final")
    reg.write_manifest(path, ("multilabel",))
    return {"path": str(path), "size": size, "outputs": len(values)}
