"""Train the evaluators of one job concurrently with Ray Train and publish the registry.

    registry_dir = train_all(load_train_config("configs/train/quickstart.yaml"))

Each evaluator is its own `TorchTrainer` run named NAME-<value>, fitted from a thread pool
(`max_concurrent` at a time; Ray queues runs whose workers do not fit yet). Re-running a
job skips evaluators already in the registry and resumes unfinished runs from their last
checkpoint (Ray Train V2 restores a run from its storage path and name).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from tqdm import tqdm

from valuecsv_ray.cluster import connect
from valuecsv_ray.config import TrainConfig
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.registry import manifest as registry
from valuecsv_ray.registry.store import publish_registry
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy
from valuecsv_ray.train.annotated import AnnotatedData, load_annotated, write_bad_rows
from valuecsv_ray.train.split import Split, make_split
from valuecsv_ray.train.worker import FINAL_DIR, MULTILABEL, RESULT_FILE, TaskSpec, train_evaluator

log = logging.getLogger(__name__)


class TrainingError(ValuecsvError, RuntimeError):
    """Some evaluators did not finish; the message names them and how to resume."""


def train_all(cfg: TrainConfig) -> Path | str:
    """Train every task of the job (skipping finished ones) and write manifest.json; returns the
    registry folder, or its URI when RUNS_DIR is on object storage (built locally, then published)."""
    path = cfg.registry_dir.resolve()
    taxonomy = load_taxonomy(cfg.taxonomy)
    data = load_annotated(cfg.data, taxonomy, skip_bad_rows=cfg.skip_bad_rows, limit=cfg.limit_rows)
    split = make_split(data.labels, cfg.split_seed, tuple(cfg.split_fractions))
    job = _job_record(cfg, taxonomy, data, split)
    registry.start_job(path, job)
    registry.write_json(path / registry.SPLIT_FILE, split.to_json())
    if data.bad_rows:
        write_bad_rows(data.bad_rows, path / registry.BAD_ROWS_FILE)
    log.info("job %s: %d samples from %s (sha256 %s), split %s", cfg.name, len(data), data.source,
             data.sha256[:12], split.counts())
    done = [t for t in cfg.task_ids if registry.evaluator_done(path, t)]
    todo = [t for t in cfg.task_ids if t not in done]
    if done:
        log.info("already trained, not retraining: %s", ", ".join(done))
    if todo:
        connect()
    failures = _fit_all(cfg, path, job, [_task_spec(cfg, taxonomy, t, data, split) for t in todo])
    registry.write_manifest(path, cfg.task_ids)
    if failures:
        detail = "\n  ".join(f"{t}: {e}" for t, e in failures.items())
        raise TrainingError(
            f"{len(failures)} evaluator(s) failed:\n  {detail}\nFinished ones are kept in {path}; "
            f"run the same command again (same --name) to resume the rest from their checkpoints."
        )
    if cfg.registry_uri:
        publish_registry(path, cfg.registry_uri)
        log.info("registry published to %s", cfg.registry_uri)
        return cfg.registry_uri
    return path


def _fit_all(cfg: TrainConfig, path: Path, job: dict, specs: list[TaskSpec]) -> dict[str, Exception]:
    failures: dict[str, Exception] = {}
    total = len(cfg.task_ids)
    with ThreadPoolExecutor(max_workers=cfg.max_concurrent) as pool, tqdm(
        total=total, initial=total - len(specs), desc="evaluators trained", unit="model"
    ) as bar:
        futures = {pool.submit(_fit_one, cfg, spec): spec.task_id for spec in specs}
        for future in as_completed(futures):
            task_id = futures[future]
            try:
                final_dir, result = future.result()
                registry.add_evaluator(path, task_id, final_dir, result, job)
                bar.set_postfix_str(f"last: {task_id}")
            except Exception as e:  # one failed value must not sink the other eleven
                log.error("evaluator %s failed: %s", task_id, e)
                failures[task_id] = e
            bar.update()
    return failures


def _fit_one(cfg: TrainConfig, spec: TaskSpec) -> tuple[Path, dict]:
    trainer = TorchTrainer(
        train_evaluator,
        train_loop_config=spec.to_config(),
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=cfg.worker_resources()),
        run_config=RunConfig(
            name=f"{cfg.name}-{spec.task_id}",
            storage_path=cfg.ray_storage if "://" in cfg.ray_storage
            else str(Path(cfg.ray_storage).resolve()),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoints_to_keep),
        ),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    if result.checkpoint is None:
        raise TrainingError(f"run {cfg.name}-{spec.task_id} ended without a final checkpoint")
    local = Path(result.checkpoint.to_directory())  # a local copy, also from s3:// storage
    if not (local / FINAL_DIR).is_dir():
        raise TrainingError(f"run {cfg.name}-{spec.task_id}: last checkpoint has no {FINAL_DIR}/")
    return local / FINAL_DIR, json.loads((local / RESULT_FILE).read_text())


def _task_spec(cfg: TrainConfig, taxonomy: Taxonomy, task_id: str, data: AnnotatedData,
               split: Split) -> TaskSpec:
    if task_id == MULTILABEL:
        value_ids, columns = list(taxonomy.ids), slice(None)
    else:
        value_ids, columns = [task_id], taxonomy.ids.index(task_id)
    texts = np.asarray(data.texts, dtype=object)
    return TaskSpec(
        task_id=task_id, value_ids=value_ids,
        texts={p: texts[idx].tolist() for p, idx in split.indices.items()},
        targets={p: data.labels[idx][:, columns].tolist() for p, idx in split.indices.items()},
        hparams=cfg.hparams,
    )


def _job_record(cfg: TrainConfig, taxonomy: Taxonomy, data: AnnotatedData, split: Split) -> dict:
    positives = data.labels.sum(axis=0).tolist()
    return {
        "config": cfg.to_dict(),
        "taxonomy": taxonomy.to_dict(),
        "data": {"source": data.source, "sha256": data.sha256, "n_samples": len(data),
                 "excluded": data.excluded, "n_bad_rows": len({(b.file, b.row) for b in data.bad_rows}),
                 "positives": dict(zip(taxonomy.ids, positives, strict=True))},
        "split": {"seed": split.seed, "fractions": list(split.fractions), "counts": split.counts(),
                  "file": registry.SPLIT_FILE},
        "versions": registry.versions(),
        "created": time.time(),
    }
