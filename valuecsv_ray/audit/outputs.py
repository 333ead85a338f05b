"""The audit's output folder: what was already done, the resume record and the final counts.

    record = start_record(out, cfg, paths, registry_id)   # audit.json, or check a resume matches
    done = done_hashes(out / SCORES)                      # 64-bit hashes of row ids written
    summary = summarize(out, rows_in)                     # rows scored / quarantined, by reason

No Ray, no torch: plain pyarrow over the Parquet files the pipeline writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from valuecsv_ray.config import AUDIT_RUNTIME_KEYS, AuditConfig
from valuecsv_ray.settings import changed_settings

log = logging.getLogger(__name__)
SCORES, QUARANTINE, STATS = "scores", "quarantine", "stats"
SUMMARY, RECORD = "summary.json", "audit.json"


class AuditError(RuntimeError):
    """An audit that cannot start or whose output does not add up."""


def row_hashes(row_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hashes of row ids (for the resume filter: 8 bytes per done row)."""
    return np.array([int.from_bytes(hashlib.blake2b(r.encode(), digest_size=8).digest(), "little",
                                    signed=True) for r in row_ids.to_pylist()], dtype=np.int64)


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


def done_hashes(folder: Path) -> np.ndarray:
    """Hashes of row ids already written; removes Parquet files cut off by an interruption."""
    hashes = []
    for leftover in folder.glob("*.tmp") if folder.is_dir() else []:  # a quarantine write cut off
        leftover.unlink()
    for file in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        try:
            hashes.append(row_hashes(pq.read_table(file, columns=["row_id"])["row_id"]))
        except (pa.ArrowInvalid, OSError) as e:
            log.warning("removing %s, cut off by an interruption (%s); its rows are redone", file, e)
            file.unlink()
    return np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)


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
