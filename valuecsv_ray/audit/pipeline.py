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
2. score: good rows are tokenised in CPU tasks and scored in an actor pool (each actor holds
   the engine); the scores are written as Parquet.
At the end the outputs are counted: rows in must equal rows scored + rows quarantined, with
no row id twice. Re-running the same command resumes: rows already in scores/ or quarantine/
are skipped, and a Parquet file cut off by an interruption is removed and its rows redone.
"""

from __future__ import annotations

import functools
import json
import logging
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

from valuecsv_ray.audit.outputs import (
    QUARANTINE,
    SCORES,
    STATS,
    SUMMARY,
    AuditError,
    start_record,
    summarize,
)
from valuecsv_ray.audit.paths import expand_inputs
from valuecsv_ray.audit.readers import read_stream
from valuecsv_ray.audit.schema import QUARANTINE_SCHEMA, label_column, prob_column, score_schema
from valuecsv_ray.audit.stats import stats_pass
from valuecsv_ray.cluster import connect
from valuecsv_ray.config import AuditConfig, InputSpec
from valuecsv_ray.parts import done_hashes, row_hashes, write_part
from valuecsv_ray.registry import Registry, load_registry
from valuecsv_ray.storage import join, located, write_text
from valuecsv_ray.taxonomy import Taxonomy

if TYPE_CHECKING:
    from valuecsv_ray.scoring.engine import Ensemble, EnsembleScores, EnsembleTokenizer

log = logging.getLogger(__name__)


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
    source = CorpusDatasource(paths, cfg.input, cfg.read_chunk_rows)
    return ray.data.read_datasource(source, num_cpus=0.5)


def _drop_done(batch: pa.Table, done: np.ndarray) -> pa.Table:
    if not len(done) or not batch.num_rows:
        return batch
    return batch.filter(pa.array(~np.isin(row_hashes(batch["row_id"]), done)))


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


def _good_rows(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_null(batch["error"])).drop_columns(["error", "raw"])


@functools.lru_cache(maxsize=2)
def _tokenizer(registry: str) -> EnsembleTokenizer:
    from valuecsv_ray.scoring.engine import EnsembleTokenizer

    return EnsembleTokenizer.from_registry(registry)


def _tokenize(batch: pa.Table, registry: str) -> pa.Table:
    """CPU stage: token windows per tokenizer group, as list<list<int32>> columns."""
    if not batch.num_rows:
        return batch
    encoded = _tokenizer(registry).encode(batch["text"].to_pylist())
    for g, per_text in enumerate(encoded):
        batch = batch.append_column(f"tokens_{g}", pa.array(per_text, type=pa.list_(pa.list_(pa.int32()))))
    return batch


class Scorer:
    """Scoring actor: holds the engine, turns tokenised rows into scores-table rows."""

    def __init__(self, registry: str, device: str | None, scoring: dict, threads: int,
                 engine: Callable[..., Ensemble] | None = None):
        import torch

        from valuecsv_ray.scoring.engine import Ensemble

        torch.set_num_threads(max(1, threads))
        self.engine = (engine or Ensemble.from_registry)(registry, device=device, **scoring)

    def __call__(self, batch: pa.Table) -> pa.Table:
        encoded = [batch[f"tokens_{g}"].to_pylist() for g in range(len(self.engine.groups))]
        return score_table(batch, self.engine.score_encoded(encoded))


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
    registry = load_registry(cfg.registry)
    summary = score_corpus(cfg, registry)
    out = cfg.out
    stats, coverage = stats_pass(join(out, SCORES), join(out, STATS), registry.taxonomy,
                                 common_prompts=not cfg.all_prompts)
    return AuditResult(located(out), summary, stats, coverage, registry.taxonomy)


def score_corpus(cfg: AuditConfig, registry: Registry, engine: Callable[..., Ensemble] | None = None) -> dict:
    """Score every row of the inputs with the registry's evaluators (resuming a previous run into
    cfg.out); returns the summary, after checking that every row is accounted for.

    `engine` stands in for `Ensemble.from_registry` in the scoring actors (same arguments; what it
    returns needs `tokenizer` and `score_encoded`): benchmarks time the pipeline alone with one
    that answers at once (bench/audit_bench.py --null-scorer). None: the registry's engine.
    """
    started = time.time()
    paths = expand_inputs(list(cfg.inputs))
    out = cfg.out
    start_record(out, cfg, paths, registry.registry_id)
    done = np.unique(np.concatenate([done_hashes(join(out, SCORES)), done_hashes(join(out, QUARANTINE))]))
    if len(done):
        log.info("resuming %s: %d rows already done are skipped", out, len(done))
    connect()
    rows_in = _check_pass(paths, cfg, done, out)
    todo = read_corpus(paths, cfg).map_batches(_drop_done, fn_kwargs={"done": done}, batch_format="pyarrow",
                                               batch_size=None)
    _score(todo, cfg, engine).write_parquet(join(out, SCORES))
    summary = summarize(out, rows_in=rows_in)
    summary |= {"inputs": paths, "registry_id": registry.registry_id, "started": started,
                "finished": time.time(), "wall_s": round(time.time() - started, 2)}
    write_text(join(out, SUMMARY), json.dumps(summary, indent=2, ensure_ascii=False))
    if summary["rows_in"] != summary["rows_scored"] + summary["rows_quarantined"] or summary["duplicates"]:
        raise AuditError(f"rows do not add up in {out}: {summary['rows_in']} in, {summary['rows_scored']} "
                         f"scored, {summary['rows_quarantined']} quarantined, {summary['duplicates']} "
                         "duplicate row ids (see summary.json)")
    return summary


def _check_pass(paths: list[str], cfg: AuditConfig, done: np.ndarray, out: str) -> int:
    """Quarantine the bad rows and count the rows in; refuse a row id used twice before scoring."""
    checked = read_corpus(paths, cfg).map_batches(
        _check, fn_kwargs={"done": done, "quarantine": join(out, QUARANTINE)}, batch_format="pyarrow",
        batch_size=None)
    hashes = [b["hash"] for b in checked.iter_batches(batch_format="numpy", batch_size=None)]
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


def _score(todo: ray.data.Dataset, cfg: AuditConfig, engine: Callable[..., Ensemble] | None
           ) -> ray.data.Dataset:
    device = cfg.device
    good = todo.map_batches(_good_rows, batch_format="pyarrow", batch_size=None)
    tokens = good.map_batches(_tokenize, fn_kwargs={"registry": cfg.registry}, batch_format="pyarrow",
                              batch_size=cfg.batch_size, num_cpus=0.5)
    return tokens.map_batches(
        Scorer, fn_constructor_kwargs={"registry": cfg.registry, "device": device,
                                       "scoring": cfg.scoring.engine_kwargs(),
                                       "threads": int(cfg.cpus_per_actor), "engine": engine},
        compute=ray.data.ActorPoolStrategy(size=cfg.actors), num_cpus=cfg.cpus_per_actor,
        num_gpus=cfg.gpus_per_actor or None, batch_size=cfg.batch_size, batch_format="pyarrow")


__all__ = ["AuditError", "AuditResult", "run_audit", "score_corpus", "score_table"]
