"""Parquet part files that resume: written whole or not at all, and the row ids already written.

    write_part(table, Path("out/responses"), key=f"{first_id}\\0{last_id}")
    done = done_hashes(Path("out/responses"), column="id")   # 64-bit hashes, cut-off files removed

Both the collect and the audit stages write a folder of part files from their actors and resume
by skipping rows whose id is already in one. A part is written under a temporary name and
renamed, and its name comes from the rows it holds, so a retried task rewrites the same file.
No Ray, no torch.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)


def row_hashes(row_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hashes of row ids (for the resume filter: 8 bytes per done row)."""
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(r.encode(), digest_size=8).digest(), "little", signed=True)
            for r in row_ids.to_pylist()
        ],
        dtype=np.int64,
    )


def write_part(table: pa.Table, folder: Path, key: str) -> Path:
    """Write `table` as folder/part-<hash of key>.parquet, atomically (temporary name, then rename)."""
    path = folder / f"part-{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return path


def done_hashes(folder: Path, column: str = "row_id") -> np.ndarray:
    """Hashes of the row ids already written; removes files cut off by an interruption."""
    hashes = []
    for leftover in folder.glob("*.tmp") if folder.is_dir() else []:  # a write cut off before its rename
        leftover.unlink()
    for file in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        try:
            hashes.append(row_hashes(pq.read_table(file, columns=[column])[column]))
        except (pa.ArrowInvalid, OSError) as e:
            log.warning("removing %s, cut off by an interruption (%s); its rows are redone", file, e)
            file.unlink()
    return np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)
