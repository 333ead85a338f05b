"""The audit's output folder: what was already done, the resume record, progress and final counts.

    record = start_record(out, cfg, paths, registry_id)   # audit.json, or check a resume matches
    progress = Progress(out, every_s=5, record={...})     # summary.json while the audit runs
    summary = summarize(out, rows_in)                     # rows scored / quarantined, by reason

No Ray, no torch: plain pyarrow over the Parquet files the pipeline writes.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from valuecsv_ray.config import AUDIT_RUNTIME_KEYS, AuditConfig
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.settings import changed_settings
from valuecsv_ray.storage import is_file, join, read_json, read_parquet, write_json

SCORES, QUARANTINE, STATS = "scores", "quarantine", "stats"
SUMMARY, RECORD = "summary.json", "audit.json"


class AuditError(ValuecsvError, RuntimeError):
    """An audit that cannot start or whose output does not add up."""


def start_record(out: str, cfg: AuditConfig, paths: list[str], registry_id: str) -> None:
    """Write audit.json, or check that a resumed audit scores the same inputs the same way."""
    record = {"config": cfg.to_dict(), "inputs": paths, "registry_id": registry_id}
    path = join(out, RECORD)
    if is_file(path):
        old = read_json(path)
        changed = changed_settings(old["config"], record["config"], AUDIT_RUNTIME_KEYS)
        changed += [k for k in ("inputs", "registry_id") if old.get(k) != record[k]]
        if changed:
            raise AuditError(f"{out} holds an audit with other settings ({', '.join(changed)}): resume "
                             "with the same inputs and registry, or choose a new --out folder")
        return
    write_json(path, record)


class Progress:
    """The audit's progress in summary.json while it runs: {"status": "running", ..., "progress":
    {phase, rows checked and scored by this run, rows scored per second since scoring began,
    seconds elapsed, ...}}. Rewritten whole (a rename, or one upload) at most every `every_s`
    seconds and at each change of phase, so a run cut short still tells how far it got and how
    fast; the final summary keeps the last "progress"."""

    def __init__(self, out: str, every_s: float, record: dict, rows_done_before: int = 0):
        self.path, self.every_s, self.record = join(out, SUMMARY), every_s, record
        self.started = self.written = time.time()
        self.counts = {"phase": "check", "rows_done_before": rows_done_before, "rows_in": None,
                       "rows_checked": 0, "rows_scored": 0}
        self.scoring_since: float | None = None
        self.first_scores_s: float | None = None  # seconds from the start to the first rows scored

    def checked(self, rows: int) -> None:
        self.counts["rows_checked"] += rows
        self._maybe_write()

    def start_scoring(self, rows_in: int) -> None:
        self.counts |= {"phase": "score", "rows_in": rows_in}
        self.scoring_since = time.time()
        self.write()

    def scored(self, rows: int) -> None:
        if self.first_scores_s is None and rows:
            self.first_scores_s = round(time.time() - self.started, 2)
        self.counts["rows_scored"] += rows
        self._maybe_write()

    def report(self) -> dict:
        now = time.time()
        scoring_s = now - self.scoring_since if self.scoring_since else 0.0
        rate = self.counts["rows_scored"] / scoring_s if scoring_s > 0 else 0.0
        return {**self.counts, "rows_per_s": round(rate, 1), "scoring_s": round(scoring_s, 2),
                "elapsed_s": round(now - self.started, 2), "first_scores_s": self.first_scores_s,
                "updated": now}

    def write(self, status: str = "running", **fields) -> dict:
        """Write summary.json: status, the record, `fields` and the progress so far; returns it."""
        summary = {"status": status, **self.record, **fields, "progress": self.report()}
        write_json(self.path, summary)
        self.written = time.time()
        return summary

    def _maybe_write(self) -> None:
        if time.time() - self.written >= self.every_s:
            self.write()


def summarize(out: str, rows_in: int) -> dict:
    """Counts from the written outputs: scored, quarantined (by reason), per model, duplicates."""
    scores = _read(join(out, SCORES), ["row_id", "model"])
    quarantine = _read(join(out, QUARANTINE), ["row_id", "reason"])
    ids = pa.concat_arrays([scores["row_id"].combine_chunks(), quarantine["row_id"].combine_chunks()])
    return {
        "rows_in": rows_in, "rows_scored": scores.num_rows, "rows_quarantined": quarantine.num_rows,
        "duplicates": len(ids) - len(pc.unique(ids)),
        "quarantine_reasons": _counts(quarantine["reason"]), "rows_per_model": _counts(scores["model"]),
    }


def _read(folder: str, columns: list[str]) -> pa.Table:
    table = read_parquet(folder, columns)
    return table if table is not None else pa.table({c: pa.array([], type=pa.string()) for c in columns})


def _counts(column: pa.ChunkedArray) -> dict[str, int]:
    # reasons carry details after ':' (e.g. the JSON error): count by the reason's kind
    kinds = [str(v).split(":")[0] for v in column.to_pylist()]
    names, counts = np.unique(np.array(kinds, dtype=object), return_counts=True) if kinds else ([], [])
    return {str(n): int(c) for n, c in zip(names, counts, strict=True)}
