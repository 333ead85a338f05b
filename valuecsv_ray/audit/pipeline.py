"""Batch audit of LLM corpora with Ray Data: read -> validate -> tokenise -> score -> Parquet -> stats.

    result = run_audit(load_audit_config(overrides={
        "inputs": ["answers.jsonl"], "registry": "runs/quickstart", "out": "audit/run1"}))
    result.summary["rows_scored"], result.stats, result.coverage

The values scored are the registry's: its taxonomy decides the score columns and the statistics.
Output folder (schemas in valuecsv_ray.audit.schema):
    scores/       one row per scored input row (score_schema(taxonomy))
    quarantine/   one row per input row that could not be scored, with the reason
    summary.json  rows in = rows scored + rows quarantined, reasons, rows per model
    audit.json    the resolved config and registry id (a re-run must match it)
    stats/        statistics per model, value, group and overall (valuecsv_ray.audit.stats)

Two passes over the inputs, both streaming (files are read in blocks by a Ray Data datasource,
so the corpus never has to fit in memory):
1. check: rows that cannot be scored go to quarantine/, and the rows in are counted by their
   row-id hashes; a row id found in two input files stops the audit before any scoring.
2. score: good rows go to an actor pool (each actor holds the engine; it tokenises one batch
   while it scores the one before), and each scored block is written as one Parquet part.
Before the first pass the cluster's free CPUs and GPUs are checked against the actors and tasks
(`capacity`); while the passes run, summary.json holds the progress (`outputs.Progress`).
At the end the outputs are counted: rows in must equal rows scored + rows quarantined, with
no row id twice. Re-running the same command resumes: rows already in scores/ or quarantine/
are skipped, and a Parquet file cut off by an interruption is removed and its rows redone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data.datasource import FileBasedDatasource

from valuecsv_ray.audit.capacity import TASK_CPUS, check_capacity
from valuecsv_ray.audit.outputs import (
    QUARANTINE,
    SCORES,
    STATS,
    AuditError,
    Progress,
    start_record,
    summarize,
)
from valuecsv_ray.audit.paths import expand_inputs
from valuecsv_ray.audit.readers import read_stream
from valuecsv_ray.audit.schema import QUARANTINE_SCHEMA, label_column, prob_column, score_schema
from valuecsv_ray.audit.stats import stats_pass
from valuecsv_ray.cluster import connect, worker_logging
from valuecsv_ray.config import AuditConfig, InputSpec
from valuecsv_ray.parts import done_hashes, row_hashes, write_part
from valuecsv_ray.registry.manifest import Registry, load_registry
from valuecsv_ray.registry.students import scorer_location
from valuecsv_ray.storage import join, located
from valuecsv_ray.taxonomy import Taxonomy

if TYPE_CHECKING:
    from valuecsv_ray.scoring.engine import Ensemble, EnsembleScores

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0  # seconds between progress updates in summary.json
BLOCK_BYTES = 1 << 20  # rows flow between stages in blocks of ~1 MiB (~2,000 rows of 120 characters)


@dataclass(frozen=True)
class AuditResult:
    """What an audit produced: the counts, and the statistics written into OUT/stats/."""

    out: Path | str  # the audit's output folder: a Path, or a URI (object storage)
    summary: dict  # summary.json: rows in = rows scored + rows quarantined, reasons, rows per model
    stats: pd.DataFrame  # STATS_SCHEMA rows (stats/stats.parquet)
    coverage: dict  # rows and prompts per model, and whether models were compared on common prompts
    taxonomy: Taxonomy  # the registry's values, whose scores these are

    @property
    def stats_dir(self) -> Path | str:
        return located(join(self.out, STATS))


class CorpusDatasource(FileBasedDatasource):
    """Ray Data reader for LLM-output files; every input row becomes one RAW_SCHEMA row."""

    def __init__(self, paths: list[str], spec: InputSpec, chunk_rows: int, **kwargs):
        super().__init__(paths, **kwargs)
        self.spec, self.chunk_rows = spec, chunk_rows
        # Ray hands _read_stream paths without their scheme (s3://b/x -> b/x); rows name the input as given
        self.given = {_without_scheme(p): p for p in paths}

    def _read_stream(self, f, path: str):
        yield from read_stream(f, self.given.get(path, path), self.spec, self.chunk_rows)


def _without_scheme(path: str) -> str:
    parsed = urlparse(path)
    if len(parsed.scheme) < 2:  # a local path (or a Windows drive letter)
        return path
    return parsed.netloc + parsed.path  # s3://b/x -> b/x, file:///x -> /x


def read_corpus(paths: list[str], cfg: AuditConfig) -> ray.data.Dataset:
    """The inputs' rows (RAW_SCHEMA), one read task per file, in blocks of about BLOCK_BYTES.

    Maps on it run inside the read task (more blocks than files would have Ray split the read's
    output and keep the maps apart). Ray's default block size (128 MiB) would hold a whole file:
    nothing would flow on, nor be counted, before the file's end.
    """
    source = CorpusDatasource(paths, cfg.input, cfg.read_chunk_rows)
    ds = ray.data.read_datasource(source, num_cpus=TASK_CPUS, override_num_blocks=len(paths))
    ds.context.target_max_block_size = BLOCK_BYTES  # this dataset's and those made from it
    return ds


def _per_block(ds: ray.data.Dataset, fn, **kwargs) -> ray.data.Dataset:
    """`fn(block, **kwargs)` on every block, in a task of TASK_CPUS (after a read: in the read task)."""
    return ds.map_batches(fn, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=None, num_cpus=TASK_CPUS)


def _check(batch: pa.Table, done: np.ndarray, quarantine: str) -> pa.Table:
    """Check pass, per block: write its bad rows not yet done to quarantine/; return its row-id hashes.

    The file name comes from the block's first and last row, so a retried task rewrites the same
    file; it is written under a temporary name and renamed, so it is never seen cut off.
    """
    hashes = row_hashes(batch["row_id"])
    bad = _bad_rows(batch.filter(pa.array(~np.isin(hashes, done))) if len(done) else batch)
    if bad.num_rows:
        key = f"{batch['source'][0]}\0{batch['position'][0]}\0{batch['position'][-1]}"
        write_part(bad, quarantine, key)
    return pa.table({"hash": pa.array(hashes, type=pa.int64())})


def _bad_rows(batch: pa.Table) -> pa.Table:
    bad = batch.filter(pc.is_valid(batch["error"]))
    return pa.table({"row_id": bad["row_id"], "source": bad["source"], "position": bad["position"],
                     "reason": bad["error"], "raw": bad["raw"]}).cast(QUARANTINE_SCHEMA)


def _to_score(batch: pa.Table, done: np.ndarray) -> pa.Table:
    """Score pass, per block: the good rows not yet done."""
    good = batch.filter(pc.is_null(batch["error"])).drop_columns(["error", "raw"])
    if not len(done) or not good.num_rows:
        return good
    return good.filter(pa.array(~np.isin(row_hashes(good["row_id"]), done)))


def _write_scores(batch: pa.Table, folder: str) -> pa.Table:
    """Write a scored block as one part of scores/ (named by its rows: a retried task rewrites the
    same file, whole or not at all); return its row count, the driver's progress."""
    if batch.num_rows:
        write_part(batch, folder, f"{batch['row_id'][0]}\0{batch['row_id'][-1]}\0{batch.num_rows}")
    return pa.table({"rows": pa.array([batch.num_rows], type=pa.int64())})


class Scorer:
    """Scoring actor: holds the engine; tokenises rows and scores them into scores-table rows.

    Ray Data calls it from two threads, so that one batch is tokenised (on the CPU) while the
    one before is scored; each lock lets one batch at a time into its step.
    """

    def __init__(self, registry: str, device: str | None, scoring: dict, threads: int,
                 engine: Callable[..., Ensemble] | None = None):
        import torch

        from valuecsv_ray.scoring.engine import Ensemble

        worker_logging()  # the engine's load phases and settings, in this actor's log
        torch.set_num_threads(max(1, threads))
        self.engine = (engine or Ensemble.from_registry)(registry, device=device, **scoring)
        self.tokenizing, self.scoring = threading.Lock(), threading.Lock()

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch["text"].to_pylist()
        with self.tokenizing:
            encoded = self.engine.tokenizer.encode(texts)
        with self.scoring:
            scores = self.engine.score_encoded(encoded)
        return score_table(batch, scores)


def score_table(rows: pa.Table, scores: EnsembleScores) -> pa.Table:
    """Rows (with row_id, source, position, model, prompt, text) and their scores, as the scores
    table of the scores' taxonomy (score_schema)."""
    columns = {name: rows[name] for name in ("row_id", "source", "position", "model", "prompt")}
    columns["text_chars"] = pc.utf8_length(rows["text"])
    columns["windows"] = pa.array(scores.windows, type=pa.int16())
    columns |= {prob_column(v): pa.array(scores.probs[:, j]) for j, v in enumerate(scores.value_ids)}
    columns |= {label_column(v): pa.array(scores.labels[:, j]) for j, v in enumerate(scores.value_ids)}
    columns["registry_id"] = pa.array([scores.registry_id] * rows.num_rows, type=pa.string())
    return pa.table(columns).cast(score_schema(scores.taxonomy))


def run_audit(cfg: AuditConfig) -> AuditResult:
    """Score every row of the inputs into cfg.out (resuming a previous run there), then write the
    statistics over the registry's values into cfg.out/stats: the audit in one call."""
    log.info("audit config: %s", cfg.to_dict())
    location = scorer_location(cfg.registry, **cfg.scorer.kwargs())  # the registry, or its student
    registry = load_registry(location)
    summary = score_corpus(cfg, registry, location=location)
    out = cfg.out
    stats, coverage = stats_pass(join(out, SCORES), join(out, STATS), registry.taxonomy,
                                 common_prompts=not cfg.all_prompts)
    return AuditResult(located(out), summary, stats, coverage, registry.taxonomy)


def score_corpus(cfg: AuditConfig, registry: Registry, engine: Callable[..., Ensemble] | None = None,
                 progress_every_s: float = PROGRESS_EVERY_S, location: str | None = None) -> dict:
    """Score every row of the inputs with the registry's evaluators (resuming a previous run into
    cfg.out); returns the summary, after checking that every row is accounted for.

    `engine` stands in for `Ensemble.from_registry` in the scoring actors (same arguments; what it
    returns needs `tokenizer` and `score_encoded`): benchmarks time the pipeline alone with one
    that answers at once (bench/audit_bench.py --null-scorer). None: the registry's engine.
    Progress goes to summary.json every `progress_every_s` seconds. `location`: where the actors
    load `registry` from (a folder or URI; default cfg.registry; a student's: `registry.students`).
    """
    paths = expand_inputs(list(cfg.inputs))
    connect()
    check_capacity(cfg)
    out = cfg.out
    start_record(out, cfg, paths, registry.registry_id)
    done = np.unique(np.concatenate([done_hashes(join(out, SCORES)), done_hashes(join(out, QUARANTINE))]))
    if len(done):
        log.info("resuming %s: %d rows already done are skipped", out, len(done))
    progress = Progress(out, progress_every_s, {"inputs": paths, "registry_id": registry.registry_id},
                        rows_done_before=len(done))
    try:
        rows_in = _check_pass(paths, cfg, done, out, progress)
        progress.start_scoring(rows_in)
        _score_pass(paths, cfg, done, out, engine, progress, location or cfg.registry)
        summary = summarize(out, rows_in=rows_in)
    except Exception as e:
        progress.write("failed", error=f"{type(e).__name__}: {str(e)[:2000]}")
        raise
    started, finished = progress.started, time.time()
    summary |= {"started": started, "finished": finished, "wall_s": round(finished - started, 2)}
    if summary["rows_in"] != summary["rows_scored"] + summary["rows_quarantined"] or summary["duplicates"]:
        error = (f"rows do not add up in {out}: {summary['rows_in']} in, {summary['rows_scored']} scored, "
                 f"{summary['rows_quarantined']} quarantined, {summary['duplicates']} duplicate row ids "
                 "(see summary.json)")
        progress.write("failed", **summary, error=error)
        raise AuditError(error)
    return progress.write("done", **summary)


def _check_pass(paths: list[str], cfg: AuditConfig, done: np.ndarray, out: str, progress: Progress) -> int:
    """Quarantine the bad rows and count the rows in; refuse a row id used twice before scoring."""
    checked = _per_block(read_corpus(paths, cfg), _check, done=done, quarantine=join(out, QUARANTINE))
    hashes = []
    for batch in checked.iter_batches(batch_format="numpy", batch_size=None):
        hashes.append(batch["hash"])
        progress.checked(len(batch["hash"]))
    hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)
    values, counts = np.unique(hashes, return_counts=True)
    if (counts > 1).any():
        raise AuditError(_duplicates_message(paths, cfg, values[counts > 1]))
    return len(hashes)


def _duplicates_message(paths: list[str], cfg: AuditConfig, twice: np.ndarray) -> str:
    """Which row ids appear in more than one place (ids are unique within a file, so: across files)."""
    def rows_of(batch: pa.Table) -> pa.Table:
        return batch.filter(pa.array(np.isin(row_hashes(batch["row_id"]), twice))).select(
            ["row_id", "source", "position"])

    found = read_corpus(paths, cfg).map_batches(rows_of, batch_format="pyarrow", batch_size=None).take(20)
    places = [f"{r['row_id']!r} ({r['source']} row {r['position']})" for r in found]
    return (f"{len(twice)} row id(s) appear in more than one input file, e.g. {', '.join(places)}: "
            "row ids must be unique across the inputs; fix the id column, or pass --id-column with a "
            "column that is unique (ids are then derived from file and position if it is absent)")


def _score_pass(paths: list[str], cfg: AuditConfig, done: np.ndarray, out: str,
                engine: Callable[..., Ensemble] | None, progress: Progress, location: str) -> None:
    """Score the good rows not yet done into scores/ with the registry at `location`, counting them
    into the progress."""
    todo = _per_block(read_corpus(paths, cfg), _to_score, done=done)
    scored = todo.map_batches(
        Scorer, fn_constructor_kwargs={"registry": location, "device": cfg.device,
                                       "scoring": cfg.scoring.engine_kwargs(),
                                       "threads": int(cfg.cpus_per_actor), "engine": engine},
        compute=ray.data.ActorPoolStrategy(size=cfg.actors, max_concurrent_calls_per_actor=2,
                                           enable_true_multi_threading=True),
        num_cpus=cfg.cpus_per_actor, num_gpus=cfg.gpus_per_actor or None, batch_size=cfg.batch_size,
        batch_format="pyarrow")
    written = _per_block(scored, _write_scores, folder=join(out, SCORES))
    for batch in written.iter_batches(batch_format="numpy", batch_size=None):
        progress.scored(int(batch["rows"].sum()))


__all__ = ["AuditError", "AuditResult", "run_audit", "score_corpus", "score_table"]
