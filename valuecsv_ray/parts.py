"""Parquet part files that resume: written whole or not at all, and the row ids already written.

    write_part(table, Path("out/responses"), key=f"{first_id}\\0{last_id}")
    done = done_hashes(Path("out/responses"), column="id")   # 64-bit hashes, cut-off files removed

Both the collect and the audit stages write a folder of part files from their actors and resume
by skipping rows whose id is already in one. A part is written under a temporary name and
renamed (on object storage: uploaded whole under its final name), and its name comes from the
rows it holds, so a retried task rewrites the same file. Folders are paths or URIs (`storage`).
No Ray, no torch.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from valuecsv_ray.storage import join, leftovers, parquet_files, write_table

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


def write_part(table: pa.Table, folder: str | Path, key: str) -> str:
    """Write `table` as folder/part-<hash of key>.parquet, whole or not at all; folder is a path
    or an object-storage URI."""
    name = f"part-{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}.parquet"
    write_table(table, join(folder, name))
    return join(folder, name)


def done_hashes(folder: str | Path, column: str = "row_id") -> np.ndarray:
    """Hashes of the row ids already written; removes files cut off by an interruption."""
    hashes = []
    for fs, leftover in leftovers(folder):  # a local write cut off before its rename
        fs.delete_file(leftover)
    for fs, file in parquet_files(folder):
        try:
            hashes.append(row_hashes(pq.read_table(file, columns=[column], filesystem=fs)[column]))
        except (pa.ArrowInvalid, OSError) as e:
            log.warning("removing %s, cut off by an interruption (%s); its rows are redone", file, e)
            fs.delete_file(file)
    return np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)
