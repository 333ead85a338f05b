"""The model registry: one folder per training job, one HF folder per evaluator, a manifest.

    registry = load_registry("runs/valuecsv")      # refuses an incomplete or altered folder
    registry = load_registry("s3://bucket/runs/x") # copied once into a local cache, then checked
    print(format_metrics_table(metrics_table(registry.manifest)))

Layout of RUNS_DIR/NAME:

    manifest.json               taxonomy, values, thresholds, temperatures, window rule, metrics,
                                calibration (ECE), long-text figures, backbone, data hash, split seed,
                                resolved config, versions, per-evaluator training intervals, and
                                the sha256 of every evaluator file (checked on every load; a
                                node hashes only files changed since it last verified them, see
                                registry_store; VALUECSV_FULL_VERIFY=1 hashes all)
    job.json                    what the job was started with (checked again on re-runs)
    split.json                  row indices of train / validation / test
    bad_rows.csv                rows left out with --skip-bad-rows, with the reason
    evaluators/<value_id>/      binary mode: AutoModelForSequenceClassification folder
    evaluators/multilabel/      multilabel mode: one folder, one sigmoid output per value
        config.json  model.safetensors  tokenizer.json  tokenizer_config.json  evaluator.json
    _ray/                       Ray Train runs and checkpoints (resume state)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from valuecsv_ray import __version__
from valuecsv_ray.config import TRAIN_RUNTIME_KEYS
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.registry.store import (
    MANIFEST,
    cache_registry,
    file_checksums,
    integrity_problems,
    unsafe_path,
)
from valuecsv_ray.settings import changed_settings
from valuecsv_ray.storage import is_uri, write_json
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy
from valuecsv_ray.text_table import frame_table
from valuecsv_ray.timing import format_phases, timed

FORMAT = "valuecsv-ray/registry"
FORMAT_VERSION = 3  # 2: taxonomy, window rule, temperature, calibration; 3: sha256 of every file
JOB_FILE = "job.json"
SPLIT_FILE = "split.json"
BAD_ROWS_FILE = "bad_rows.csv"
EVALUATORS = "evaluators"
EVALUATOR_FILE = "evaluator.json"
log = logging.getLogger(__name__)
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer_config.json", EVALUATOR_FILE)


class RegistryError(ValuecsvError, RuntimeError):
    """A registry folder that is missing, incomplete or from a different job."""


@dataclass(frozen=True)
class Registry:
    """A complete registry: its folder and its manifest (and how long loading it took)."""

    path: Path
    manifest: dict
    load_phases: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def registry_id(self) -> str:
        return self.manifest["registry_id"]

    @property
    def taxonomy(self) -> Taxonomy:
        """The registry's label set (the values it has evaluators for, in taxonomy order)."""
        return taxonomy_of(self.manifest)

    def evaluator_dir(self, value_id: str) -> Path:
        return self.path / self.manifest["evaluators"][value_id]["path"]


def taxonomy_of(manifest: dict) -> Taxonomy:
    """The taxonomy a manifest records, restricted to its values (manifests written before the
    taxonomy was recorded used the default one)."""
    recorded = manifest.get("taxonomy")
    taxonomy = Taxonomy.from_dict(recorded, "manifest taxonomy") if recorded else load_taxonomy()
    return taxonomy.subset(manifest["values"])


def versions() -> dict[str, str]:
    import ray
    import torch
    import transformers

    return {"valuecsv_ray": __version__, "python": platform.python_version(), "ray": ray.__version__,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "pandas": pd.__version__}


def start_job(path: Path, job: dict) -> None:
    """Record a new job, or check a re-run matches the recorded one (same data, same settings)."""
    path.mkdir(parents=True, exist_ok=True)
    job_file = path / JOB_FILE
    if not job_file.exists():
        write_json(job_file, job)
        return
    old = json.loads(job_file.read_text(encoding="utf-8"))
    added = sorted(set(job["config"]) - set(old["config"]))  # settings newer than the recorded job
    changed = changed_settings(old["config"], {k: v for k, v in job["config"].items() if k not in added},
                               TRAIN_RUNTIME_KEYS)
    if old["data"]["sha256"] != job["data"]["sha256"]:
        changed.insert(0, "data (its sha256 differs)")
    if changed:
        raise RegistryError(
            f"{path} holds job {old['config']['name']!r} started with different settings: "
            f"{', '.join(changed)}. Re-run with the original settings to resume it, or choose "
            "another --name (or delete the folder) to start a new job."
        )
    if added:
        log.warning("%s was started before the settings %s existed: resuming with %s (its finished "
                    "evaluators keep what they were trained with)", job_file, ", ".join(added),
                    ", ".join(f"{k}={job['config'][k]!r}" for k in added))
        old["config"].update({k: job["config"][k] for k in added})
        write_json(job_file, old)


def evaluator_done(path: Path, task_id: str) -> bool:
    return (path / EVALUATORS / task_id / EVALUATOR_FILE).is_file()


def add_evaluator(path: Path, task_id: str, final_dir: Path, result: dict, job: dict) -> None:
    """Copy a finished model in (atomically, via a temp folder) with its evaluator.json."""
    target = path / EVALUATORS / task_id
    tmp = target.with_name(task_id + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(final_dir, tmp)
    info = {
        "task_id": task_id, "backbone": job["config"]["backbone"], "data_sha256": job["data"]["sha256"],
        "split_seed": job["split"]["seed"], "valuecsv_ray": __version__, **result,
    }
    write_json(tmp / EVALUATOR_FILE, info)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def write_manifest(path: Path, task_ids: tuple[str, ...]) -> dict:
    """Gather job.json and every evaluator.json into manifest.json; returns the manifest."""
    job = json.loads((path / JOB_FILE).read_text(encoding="utf-8"))
    evaluators, missing = {}, []
    for task_id in task_ids:
        if not evaluator_done(path, task_id):
            missing.append(task_id)
            continue
        info = json.loads((path / EVALUATORS / task_id / EVALUATOR_FILE).read_text(encoding="utf-8"))
        for index, (value_id, ev) in enumerate(info["evaluators"].items()):
            evaluators[value_id] = {
                "path": f"{EVALUATORS}/{task_id}",
                "output_index": index if task_id == "multilabel" else 1,
                **ev,  # threshold, temperature, metrics, calibration, long_texts
                **{k: info[k] for k in ("window", "train_start", "train_end", "epochs_run", "best_epoch",
                                        "stopped_early", "attempts", "history") if k in info},
            }
    taxonomy = Taxonomy.from_dict(job["taxonomy"], JOB_FILE) if "taxonomy" in job else load_taxonomy()
    values = [v for v in taxonomy.ids if v in evaluators]
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, "mode": job["config"]["mode"],
            "taxonomy": taxonomy.to_dict(), "complete": not missing, "missing": missing, "values": values,
            "evaluators": evaluators, **{k: job[k] for k in ("config", "data", "split", "versions")},
            "backbone": job["config"]["backbone"], "created": job["created"]}
    body["files"] = file_checksums(path, body)  # part of the id: the id pins the weights
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    manifest = {"registry_id": f"{job['config']['name']}-{digest[:10]}", **body,
                "written": time.time()}
    write_json(path / MANIFEST, manifest)
    return manifest


def load_registry(path: str | Path, full_verify: bool = False) -> Registry:
    """Open a registry folder, or one on object storage (s3://, gs://: copied once into a local
    cache, see registry_store); raise RegistryError naming every missing, unsafe or altered piece.
    Files this node verified before and that are unchanged since are not hashed again, unless
    `full_verify`. The result's load_phases hold the seconds of registry_resolve and
    checksum_verification."""
    phases: dict[str, float] = {}
    with timed(phases, "registry_resolve"):
        path, manifest, problems = _resolve(path)
    with timed(phases, "checksum_verification"):
        problems += integrity_problems(path, manifest, remember=True, full_verify=full_verify)
    if problems:
        raise RegistryError(f"registry {path} is incomplete or altered:\n  " + "\n  ".join(problems)
                            + f"\n{_rebuild_hint(path)}")
    if not manifest.get("files"):
        log.warning("registry %s records no file checksums (format %s): its files are not checked; "
                    "retrain to record them", path, manifest.get("format_version"))
    log.info("registry %s at %s: %s", manifest["registry_id"], path, format_phases(phases))
    return Registry(path=path, manifest=manifest, load_phases=phases)


def _resolve(path: str | Path) -> tuple[Path, dict, list[str]]:
    """The local folder (fetched when `path` is a URI), its manifest, and what the manifest says
    is missing (integrity aside)."""
    if is_uri(path):
        try:
            path = cache_registry(str(path))
        except (OSError, ValueError) as e:
            raise RegistryError(f"cannot load registry {path}: {e}") from e
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise RegistryError(f"{path} is not a registry: {MANIFEST} is missing. {_rebuild_hint(path)}")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    problems = [f"evaluator {t!r} never finished training" for t in manifest.get("missing", [])]
    for value_id, ev in manifest["evaluators"].items():
        if unsafe_path(path, ev["path"]) is not None:
            continue  # reported by integrity_problems
        folder = path / ev["path"]
        problems += [f"{value_id}: {folder / name} is missing" for name in MODEL_FILES
                     if not (folder / name).is_file()]
        if ev.get("threshold") is None:
            problems.append(f"{value_id}: no decision threshold in the manifest")
    if not manifest["evaluators"]:
        problems.append("no evaluators")
    return path, manifest, problems


def _rebuild_hint(path: Path) -> str:
    return f"Run `valuecsv-ray train --name {path.name} --runs-dir {path.parent}` to (re)build it."


def metrics_table(manifest: dict) -> pd.DataFrame:
    """Per-value test metrics: value, group, acc, P, R, F1, AUC, ECE before/after temperature
    scaling, temperature, threshold, n_test, n_pos."""
    rows, taxonomy = [], taxonomy_of(manifest)
    for value_id, ev in manifest["evaluators"].items():
        value, m, cal = taxonomy.get(value_id), ev["metrics"], ev.get("calibration", {})
        rows.append({"value": value.name, taxonomy.group_kind: value.group,
                     "acc": m["accuracy"], "P": m["precision"], "R": m["recall"], "F1": m["f1"],
                     "AUC": m["roc_auc"], "ECE": cal.get("ece_before"), "ECE_T": cal.get("ece_after"),
                     "T": ev.get("temperature"), "threshold": ev["threshold"], "n_test": m["n_test"],
                     "n_pos": m["n_test_positive"]})
    return pd.DataFrame(rows)


def format_metrics_table(table: pd.DataFrame) -> str:
    """The table as aligned text, with a macro-mean row."""
    numeric = ["acc", "P", "R", "F1", "AUC", "ECE", "ECE_T", "T", "threshold"]
    shown = table.copy()
    means = {**{c: "" for c in table.columns}, "value": "macro mean",
             **{c: pd.to_numeric(table[c], errors="coerce").mean() for c in numeric}}
    shown = pd.concat([shown, pd.DataFrame([means])], ignore_index=True)
    for c in numeric:
        shown[c] = [f"{x:.3f}" if isinstance(x, float) and x == x else "-" for x in shown[c]]
    return frame_table(shown, right=[*numeric, "n_test", "n_pos"])
