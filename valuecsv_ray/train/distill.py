"""Distil a registry's ensemble into one student: a shared encoder with a head per value.

    student_dir = distill(load_distill_config(overrides={
        "registry": "runs/valuecsv5000-tiny", "corpus": ["answers.jsonl"]}))
    # -> runs/valuecsv5000-tiny/students/student/: an ordinary multi-label registry

1. Teacher probabilities through the audit path (Ray Data, `audit.pipeline.score_corpus`), cached
   as Parquet in REGISTRY/distill_cache/<registry id>/: the teacher's annotated texts (`gold/`)
   and each corpus the user names (`corpus-<key>/`, the key hashes the files and column spec).
   A second student of the same registry reuses them; an interrupted scoring resumes.
2. Parts: the annotated texts keep the teacher's split (train / validation / test) and their gold
   labels; corpus rows are dealt by a hash of their row id: `holdout_fraction` to validation, as
   much to test (held out), the rest to train. Corpus texts equal to an annotated one are left out.
3. One Ray Train run (`distill_worker.train_student`, DDP over `num_workers`) fits the student on
   the ensemble's probabilities (and the gold labels, `gold_weight`), then fits its temperatures
   and thresholds to the ensemble and measures it on held-out text. The train part reaches the
   workers as a Ray Data dataset (`distill_worker.train_dataset`), tokenized once, each worker
   streaming its shard.
4. The student is written as a registry of its own (mode multilabel, its backbone, the teacher's
   registry id, per value its gold metrics beside the ensemble's and its agreement) under
   REGISTRY/students/NAME, next to the evaluators (`registry.students`).

A registry on object storage (s3://, gs://) teaches from its local cache copy; the teacher's
probabilities are cached at REGISTRY_URI/distill_cache/<registry id>/ (the audit writes there, so a
student made on another machine reuses them too), the student's Ray Train checkpoints go to
REGISTRY_URI/students/NAME/_ray (every node reaches them), and the finished student is published
to REGISTRY_URI/students/NAME, where `evaluators: student` finds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from valuecsv_ray.audit.schema import prob_columns
from valuecsv_ray.backbone import load_tokenizer
from valuecsv_ray.config import TRAIN_RUNTIME_KEYS, DistillConfig, load_audit_config
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.parts import row_hashes
from valuecsv_ray.registry import manifest as reg
from valuecsv_ray.registry.store import publish_registry
from valuecsv_ray.registry.students import STUDENTS, student_location, student_summary
from valuecsv_ray.settings import runtime_keys
from valuecsv_ray.storage import is_file, is_uri, join, read_json, read_parquet, write_table
from valuecsv_ray.train.annotated import load_annotated
from valuecsv_ray.train.distill_worker import PARTS, TRAIN_DATASET, StudentSpec, train_dataset, train_student
from valuecsv_ray.train.worker import FINAL_DIR, RESULT_FILE

log = logging.getLogger(__name__)
CACHE = "distill_cache"


class DistillError(ValuecsvError, RuntimeError):
    """A student that cannot be made: no annotated data, an unusable corpus, a failed run."""


def distill(cfg: DistillConfig) -> Path | str:
    """Make (or finish) the student cfg.name of cfg.registry; returns its registry folder, or its URI
    when the registry is on object storage (published there)."""
    from valuecsv_ray.cluster import connect

    log.info("distill config: %s", cfg.to_dict())
    teacher = reg.load_registry(cfg.registry)
    path = teacher.path / STUDENTS / cfg.name
    connect()
    frames = teacher_probabilities(cfg, teacher)
    spec, counts, left_out = student_spec(cfg, teacher, frames)
    job = _job_record(cfg, teacher, counts, left_out)
    reg.start_job(path, job)
    if reg.evaluator_done(path, "multilabel"):
        log.info("student %s is already trained; writing its manifest", path)
    else:
        final_dir, result = _fit(cfg, path, spec)
        reg.add_evaluator(path, "multilabel", final_dir, result, job)
    manifest = reg.write_manifest(path, ("multilabel",))
    log.info("student %s: %s", manifest["registry_id"], student_summary(manifest))
    if not is_uri(cfg.registry):
        return path
    uri = student_location(cfg.registry, cfg.name)
    publish_registry(path, uri)
    log.info("student %s published to %s", manifest["registry_id"], uri)
    return uri


def teacher_probabilities(cfg: DistillConfig, teacher: reg.Registry) -> dict[str, pd.DataFrame]:
    """{"gold": ..., "corpus": ...}: row_id, text and the ensemble's p_<value> per row (through the
    audit path; cached, so scored once per registry and corpus)."""
    from valuecsv_ray.audit.paths import expand_inputs

    cache = cache_location(cfg, teacher)
    texts, labels, parts = annotated_texts(cfg, teacher)
    gold_file = join(cache, "gold_texts.parquet")
    if not is_file(gold_file):
        write_table(pa.table({"id": [f"gold-{i}" for i in range(len(texts))], "text": texts,
                              "model": ["annotated"] * len(texts)}), gold_file)
    gold = _scored(cfg, teacher, [gold_file], join(cache, "gold"), _OWN_COLUMNS)
    rows = gold["row_id"].str.slice(5).astype(int).to_numpy()  # gold-<i>: row i of the annotated texts
    gold, gold_labels = gold.assign(part=parts[rows]), labels[rows]
    frames = {"gold": gold.assign(**{f"gold_{j}": gold_labels[:, j] for j in range(labels.shape[1])})}
    if cfg.corpus:
        paths = expand_inputs(list(cfg.corpus))
        key = _corpus_key(paths, cfg)
        frames["corpus"] = _scored(cfg, teacher, paths, join(cache, f"corpus-{key}"), {})
    if cfg.window_pieces:
        frames["pieces"] = _scored_pieces(cfg, teacher, cache, frames)
    return frames


def cache_location(cfg: DistillConfig, teacher: reg.Registry) -> str:
    """Where the teacher's probabilities are cached: REGISTRY/distill_cache/<registry id>, at the
    registry's own location (`_own_location`)."""
    return join(_own_location(cfg, teacher), CACHE, teacher.registry_id)


def _own_location(cfg: DistillConfig, teacher: reg.Registry) -> str:
    """The teacher where every machine finds it: its URI (not this machine's cache copy of it), else
    its folder. The cached audits record it, so a second machine resumes them."""
    return cfg.registry if is_uri(cfg.registry) else str(teacher.path)


def window_pieces(text: str, width: int) -> list[str]:
    """Overlapping pieces of `width` characters (half a piece apart, the last ending at the text's
    end) of a text longer than `width`; none for a shorter one. A character is at most one token of
    a character vocabulary, so each piece fits in one window of width + 2 tokens."""
    if len(text) <= width:
        return []
    starts = [*range(0, len(text) - width, max(1, width // 2)), len(text) - width]
    return [text[s : s + width] for s in starts]


def corpus_parts(row_ids: pd.Series, holdout: float) -> np.ndarray:
    """Each corpus row's part, by a hash of its row id: `holdout` to test, as much to validation."""
    if not len(row_ids):
        return np.zeros(0, dtype=object)
    hashed = (row_hashes(pa.array(row_ids.astype(str))) % 10_000) / 10_000
    return np.select([hashed < holdout, hashed < 2 * holdout], ["test", "validation"], "train")


def _scored_pieces(cfg: DistillConfig, teacher: reg.Registry, cache: str,
                   frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Window-sized pieces of the training texts (annotated train part, corpus train rows), scored
    by the ensemble: a piece is one window, so its probability is the ensemble's window probability,
    the function the engine's aggregation composes (a whole text's is only the max or mean)."""
    gold = frames["gold"][frames["gold"]["part"] == "train"]
    corpus = frames.get("corpus", pd.DataFrame(columns=["row_id", "text"]))
    corpus = corpus[corpus_parts(corpus["row_id"], cfg.holdout_fraction) == "train"]
    ids, texts = [], []
    sources = zip([*gold["row_id"], *corpus["row_id"]], [*gold["text"], *corpus["text"]], strict=True)
    for row_id, text in sources:
        pieces = window_pieces(text, cfg.hparams.max_length - 2)
        ids += [f"piece-{row_id}-{k}" for k in range(len(pieces))]
        texts += pieces
    key = hashlib.sha256("\0".join(ids + texts).encode()).hexdigest()[:12]
    source = join(cache, f"pieces-{key}.parquet")
    if not is_file(source):
        write_table(pa.table({"id": ids, "text": texts, "model": ["piece"] * len(ids)}), source)
    return _scored(cfg, teacher, [source], join(cache, f"pieces-{key}"), _OWN_COLUMNS)


def annotated_texts(cfg: DistillConfig, teacher: reg.Registry) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The teacher's annotated texts, gold labels (n, values) and each row's part of its split."""
    # job.json and split.json at the registry's own location (a URI's cache copy has its manifest's files)
    job = read_json(join(cfg.registry, reg.JOB_FILE))
    source = cfg.data or job["config"]["data"]
    try:
        data = load_annotated(source, teacher.taxonomy, limit=job["config"].get("limit_rows"),
                              skip_bad_rows=job["config"].get("skip_bad_rows", False))
    except OSError as e:
        raise DistillError(f"the teacher's annotated data {source} cannot be read ({e}); pass "
                           "--data with a copy of it") from e
    if data.sha256 != job["data"]["sha256"]:
        raise DistillError(f"{source} is not the data {teacher.path} was trained on (sha256 "
                           f"{data.sha256[:12]} != {job['data']['sha256'][:12]}); pass --data")
    split = read_json(join(cfg.registry, reg.SPLIT_FILE))["indices"]
    parts = np.full(len(data), "", dtype=object)
    for part, rows in split.items():
        parts[rows] = part
    return list(data.texts), np.asarray(data.labels, dtype=np.float32), parts


def _scored(cfg: DistillConfig, teacher: reg.Registry, inputs: list[str], out: str,
            spec: dict) -> pd.DataFrame:
    """row_id, text and p_<value> of every scorable row of `inputs`, scored by the teacher through
    the audit (resumed from, or reused in, `out`)."""
    from valuecsv_ray.audit.pipeline import read_corpus, score_corpus

    input_spec = {**{k: v for k, v in cfg.to_dict().items() if k in _INPUT_KEYS}, **spec}
    audit = load_audit_config(overrides={
        "inputs": inputs, "registry": _own_location(cfg, teacher), "out": out, "actors": cfg.teacher_actors,
        "cpus_per_actor": cfg.cpus_per_actor, "batch_size": cfg.teacher_batch_size, **input_spec})
    started = time.perf_counter()
    summary = score_corpus(audit, teacher)
    log.info("teacher probabilities in %s: %d rows scored (%d quarantined) in %.1f s", out,
             summary["rows_scored"], summary["rows_quarantined"], time.perf_counter() - started)
    columns = ["row_id", *prob_columns(teacher.taxonomy)]
    scored = read_parquet(join(out, "scores"), columns)
    if scored is None:  # no row scored: no text longer than a window, or an empty corpus
        return pd.DataFrame(columns=[*columns, "text"])
    probs = scored.to_pandas()
    batches = read_corpus(inputs, audit).select_columns(["row_id", "text", "error"]).iter_batches(
        batch_format="pandas", batch_size=None)
    texts = pd.concat([b[b["error"].isna()][["row_id", "text"]] for b in batches]
                      or [pd.DataFrame({"row_id": [], "text": []})])
    return probs.merge(texts, on="row_id", how="inner", validate="one_to_one")


_OWN_COLUMNS = {"text_column": "text", "id_column": "id", "model_column": "model", "wide": False}  # our files
_INPUT_KEYS = ("text_column", "model_column", "prompt_column", "id_column", "wide", "question_column",
               "default_model", "sheet", "status_column")


def _corpus_key(paths: list[str], cfg: DistillConfig) -> str:
    """Names a corpus's cache: its files (path, size, modification time) and column spec."""
    h = hashlib.sha256(json.dumps({k: cfg.to_dict()[k] for k in _INPUT_KEYS}, sort_keys=True).encode())
    for p in sorted(paths):
        stat = Path(p).stat() if Path(p).exists() else None
        h.update(f"{p}\0{stat.st_size if stat else ''}\0{stat.st_mtime_ns if stat else ''}\n".encode())
    return h.hexdigest()[:12]


def student_spec(cfg: DistillConfig, teacher: reg.Registry, frames: dict[str, pd.DataFrame]
                 ) -> tuple[StudentSpec, dict, dict]:
    """The student's parts (texts, teacher probabilities, gold labels or NaN), their counts, and the
    rows left out of them, counted by reason."""
    value_ids = list(teacher.taxonomy.ids)
    gold = frames["gold"]
    corpus = frames.get("corpus", pd.DataFrame(columns=["row_id", "text"]))
    annotated = corpus["text"].isin(set(gold["text"]))
    corpus = corpus[~annotated]  # no held-out annotated text in train
    corpus = corpus.assign(part=corpus_parts(corpus["row_id"], cfg.holdout_fraction))
    pieces = frames.get("pieces", pd.DataFrame(columns=["row_id", "text"])).assign(part="train")
    probs = list(prob_columns(teacher.taxonomy))
    texts, teacher_p, gold_y, counts = {}, {}, {}, {}
    for part in PARTS:
        g = gold[gold["part"] == part]
        c = pd.concat([corpus[corpus["part"] == part], pieces[pieces["part"] == part]])
        texts[part] = [*g["text"], *c["text"]]
        teacher_p[part] = np.concatenate([g[probs].to_numpy(float), c.reindex(columns=probs).to_numpy(float)]
                                         ).tolist()
        labels = g[[f"gold_{j}" for j in range(len(value_ids))]].to_numpy(dtype=float)
        gold_y[part] = np.concatenate([labels, np.full((len(c), len(value_ids)), np.nan)]).tolist()
        counts[part] = {"annotated": len(g), "corpus": int((corpus["part"] == part).sum()),
                        **({"pieces": int((pieces["part"] == part).sum())} if len(pieces) else {})}
    thresholds = [teacher.manifest["evaluators"][v]["threshold"] for v in value_ids]
    temperatures = [teacher.manifest["evaluators"][v].get("temperature", 1.0) for v in value_ids]
    spec = StudentSpec(value_ids=value_ids, texts=texts, teacher=teacher_p, gold=gold_y,
                       teacher_thresholds=thresholds, gold_weight=cfg.gold_weight, hparams=cfg.hparams,
                       teacher_temperatures=temperatures if cfg.raw_targets else None)
    left_out = {"corpus_equal_to_annotated": int(annotated.sum())}
    log.info("student parts: %s; left out: %s", counts, left_out)
    return spec, counts, left_out


def _fit(cfg: DistillConfig, path: Path, spec: StudentSpec) -> tuple[Path, dict]:
    storage = (join(student_location(cfg.registry, cfg.name), "_ray") if is_uri(cfg.registry)
               else str((path / "_ray").resolve()))
    started = time.perf_counter()
    data = train_dataset(spec, load_tokenizer(cfg.hparams.backbone))
    log.info("train part: %d rows tokenized into the object store in %.1f s", data.count(),
             time.perf_counter() - started)
    trainer = TorchTrainer(
        train_student, train_loop_config=spec.streamed().to_config(), datasets={TRAIN_DATASET: data},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=cfg.worker_resources()),
        run_config=RunConfig(name=f"student-{cfg.name}", storage_path=storage,
                             failure_config=FailureConfig(max_failures=cfg.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)))
    result = trainer.fit()
    if result.error:
        raise DistillError(f"the student's run failed: {result.error}; run the same command again "
                           "to resume it from its last checkpoint") from result.error
    local = Path(result.checkpoint.to_directory())
    return local / FINAL_DIR, json.loads((local / RESULT_FILE).read_text())


def _job_record(cfg: DistillConfig, teacher: reg.Registry, counts: dict, left_out: dict) -> dict:
    # how the teacher's scoring ran changes no result: left out, so a re-run may change it
    scoring_only = set(runtime_keys(DistillConfig)) - set(TRAIN_RUNTIME_KEYS)
    config = {**{k: v for k, v in cfg.to_dict().items() if k not in scoring_only}, "mode": "multilabel",
              "teacher_registry_id": teacher.registry_id,
              "teacher_backbone": teacher.manifest.get("backbone")}
    return {
        "config": config, "taxonomy": teacher.taxonomy.to_dict(),
        "data": {"source": f"distilled from {teacher.registry_id}",
                 "sha256": teacher.manifest["data"]["sha256"],
                 "n_samples": sum(sum(c.values()) for c in counts.values()), "corpus": list(cfg.corpus),
                 "cache": cache_location(cfg, teacher)},
        "split": {"seed": teacher.manifest["split"]["seed"], "counts": counts,
                  "holdout_fraction": cfg.holdout_fraction, "left_out": left_out},
        "versions": reg.versions(), "created": time.time(),
    }
