"""The audit's output folder: what was already done, the resume record and the final counts.

    record = start_record(out, cfg, paths, registry_id)   # audit.json, or check a resume matches
    summary = summarize(out, rows_in)                     # rows scored / quarantined, by reason

No Ray, no torch: plain pyarrow over the Parquet files the pipeline writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from valuecsv_ray.config import AUDIT_RUNTIME_KEYS, AuditConfig
from valuecsv_ray.settings import changed_settings

SCORES, QUARANTINE, STATS = "scores", "quarantine", "stats"
SUMMARY, RECORD = "summary.json", "audit.json"


class AuditError(RuntimeError):
    """An audit that cannot start or whose output does not add up."""


def start_record(out: Path, cfg: AuditConfig, paths: list[str], registry_id: str) -> None:
    """Write audit.json, or check that a resumed audit scores the same inputs the same way."""
    record = {"config": cfg.to_dict(), "inputs": paths, "registry_id": registry_id}
    path = out / RECORD
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = changed_settings(old["config"], record["config"], AUDIT_RUNTIME_KEYS)
        changed += [k for k in ("inputs", "registry_id") if old.get(k) != record[k]]
        if changed:
            raise AuditError(f"{out} holds an audit with other settings ({', '.join(changed)}): resume "
                             "with the same inputs and registry, or choose a new --out folder")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")


def summarize(out: Path, rows_in: int) -> dict:
    """Counts from the written outputs: scored, quarantined (by reason), per model, duplicates."""
    scores = _read(out / SCORES, ["row_id", "model"])
    quarantine = _read(out / QUARANTINE, ["row_id", "reason"])
    ids = pa.concat_arrays([scores["row_id"].combine_chunks(), quarantine["row_id"].combine_chunks()])
    return {
        "rows_in": rows_in, "rows_scored": scores.num_rows, "rows_quarantined": quarantine.num_rows,
        "duplicates": len(ids) - len(pc.unique(ids)),
        "quarantine_reasons": _counts(quarantine["reason"]), "rows_per_model": _counts(scores["model"]),
    }


def _read(folder: Path, columns: list[str]) -> pa.Table:
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    tables = [pq.read_table(f, columns=columns) for f in files]
    if not tables:
        return pa.table({c: pa.array([], type=pa.string()) for c in columns})
    return pa.concat_tables(tables)


def _counts(column: pa.ChunkedArray) -> dict[str, int]:
    # reasons carry details after ':' (e.g. the JSON error): count by the reason's kind
    kinds = [str(v).split(":")[0] for v in column.to_pylist()]
    names, counts = np.unique(np.array(kinds, dtype=object), return_counts=True) if kinds else ([], [])
    return {str(n): int(c) for n, c in zip(names, counts, strict=True)}
