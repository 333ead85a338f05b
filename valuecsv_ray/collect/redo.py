"""`--redo-failed`: ask again the rows whose status is not ok, keeping every ok row.

    moved = supersede_failed("eval/collect")   # {"http_error": 3, "timeout": 1}: now missing, so asked
    redo_summary(responses, "eval/collect")    # what summary.json says of every row ever redone

The failed rows move, whole, from `responses/` to `superseded/redo-<hash>.parquet` (same schema;
written first), then each part file that held one is rewritten without it (or removed when it
held nothing else). The rows are then missing from `responses/`, and the run asks them as it asks
any missing row: exactly once, resumable. An ok row is never moved, so never asked again. A run
killed half-way through the move leaves some failed rows in place; the next `--redo-failed` moves
them. Nothing is lost: the superseded rows keep their error, attempts and usage (they count in the
run's spend). No Ray.
"""

from __future__ import annotations

import hashlib
import logging

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from valuecsv_ray.collect.actor import RESPONSES
from valuecsv_ray.collect.schema import OK, RESPONSE_SCHEMA
from valuecsv_ray.storage import join, parquet_files, read_parquet, write_table

log = logging.getLogger(__name__)
SUPERSEDED = "superseded"


def supersede_failed(out: str) -> dict[str, int]:
    """Move every row of out/responses whose status is not ok to out/superseded; their counts by
    status (empty when there was none)."""
    folder, moved, kept = join(out, RESPONSES), [], []
    for fs, path in parquet_files(folder):
        try:
            status = pq.read_table(path, columns=["status"], filesystem=fs)["status"]
        except (pa.ArrowInvalid, OSError):
            continue  # cut off by an interruption: the resume removes it and redoes its rows
        if pc.all(pc.equal(status, OK)).as_py():
            continue
        table = pq.read_table(path, filesystem=fs).cast(RESPONSE_SCHEMA)
        failed = pc.not_equal(table["status"], OK)
        moved.append(table.filter(failed))
        kept.append((fs, path, table.filter(pc.invert(failed))))
    if not moved:
        return {}
    rows = pa.concat_tables(moved)
    key = "\n".join(
        sorted(
            f"{i}\0{t}" for i, t in zip(rows["id"].to_pylist(), rows["finished_at"].to_pylist(), strict=True)
        )
    )
    name = f"redo-{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}.parquet"
    write_table(rows, join(out, SUPERSEDED, name))  # first: a kill after this loses nothing
    for fs, path, table in kept:
        if table.num_rows:
            write_table(table, join(folder, path.rsplit("/", 1)[-1]))
        else:
            fs.delete_file(path)
    counts = rows["status"].to_pandas().value_counts().to_dict()
    log.info(
        "redo failed: %d rows moved to %s and asked again (%s)", rows.num_rows, join(out, SUPERSEDED), counts
    )
    return counts


def superseded(out: str, columns: list[str]) -> pd.DataFrame:
    """The rows --redo-failed moved aside (each once, however often a move was repeated)."""
    table = read_parquet(join(out, SUPERSEDED), columns=sorted({"id", "finished_at", *columns}))
    if table is None:
        return pd.DataFrame(columns=sorted({"id", "finished_at", *columns}))
    return table.to_pandas().drop_duplicates(["id", "finished_at"])


def redo_summary(responses: pd.DataFrame, out: str) -> dict | None:
    """How the redone rows ended: `retried` rows moved (a row redone twice counts twice), the
    statuses they `were`, and the status each has `now` ("not_asked" while it is missing)."""
    old = superseded(out, ["status"])
    if not len(old):
        return None
    now = (
        responses.drop_duplicates("id").set_index("id")["status"] if len(responses) else pd.Series(dtype=str)
    )
    ended = now.reindex(old["id"].unique()).fillna("not_asked")
    return {
        "retried": len(old),
        "were": old["status"].value_counts().to_dict(),
        "now": ended.value_counts().to_dict(),
    }
