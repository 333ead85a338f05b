"""The audit's output schemas, defined once (every writer and reader uses these).

    import pyarrow.parquet as pq
    from valuecsv_ray.audit.schema import prob_column, score_schema
    schema = score_schema(load_registry("runs/quickstart").taxonomy)
    table = pq.read_table("out/scores", columns=["model", prob_column("freedom")])

Three tables, all Parquet (pandas, DuckDB and spreadsheets read them):
- `scores/`: one row per scored input row (`score_schema(taxonomy)`: a probability and a label
  column per value of the registry's taxonomy, in taxonomy order);
- `quarantine/`: one row per input row that could not be scored, with the reason
  (QUARANTINE_SCHEMA); rows in = rows scored + rows quarantined;
- `stats/`: per (model, scope, key) statistics (STATS_SCHEMA, written by `valuecsv_ray.audit.stats`).
No torch, no Ray: stats and report import this module.
"""

from __future__ import annotations

import pyarrow as pa

from valuecsv_ray.audit.statistics import statistic_fields
from valuecsv_ray.taxonomy import Taxonomy

UNKNOWN_MODEL = "unknown"  # model name for rows whose input has no model column


def prob_column(value_id: str) -> str:
    """Probability column of a value in the scores table: p_<value_id>."""
    return f"p_{value_id}"


def label_column(value_id: str) -> str:
    """Label column of a value in the scores table: y_<value_id>."""
    return f"y_{value_id}"


def prob_columns(taxonomy: Taxonomy) -> tuple[str, ...]:
    """The probability columns of a taxonomy's values, in taxonomy order."""
    return tuple(prob_column(v) for v in taxonomy.ids)


def label_columns(taxonomy: Taxonomy) -> tuple[str, ...]:
    """The label columns of a taxonomy's values, in taxonomy order."""
    return tuple(label_column(v) for v in taxonomy.ids)


def score_schema(taxonomy: Taxonomy) -> pa.Schema:
    """The scores table of an audit with a registry of `taxonomy`'s values."""
    return pa.schema([
        pa.field("row_id", pa.string(), nullable=False),  # the input's id, else "<source>:<position>"
        pa.field("source", pa.string(), nullable=False),  # input file (path or URI) the row came from
        pa.field("position", pa.int64(), nullable=False),  # 0-based row position in that file
        pa.field("model", pa.string(), nullable=False),  # LLM that wrote the text; UNKNOWN_MODEL if absent
        pa.field("prompt", pa.string()),  # the prompt / question, null when the input has none
        pa.field("text_chars", pa.int32(), nullable=False),  # length of the text in characters
        pa.field("windows", pa.int16(), nullable=False),  # 512-token windows the text was scored over
        *[pa.field(c, pa.float32(), nullable=False) for c in prob_columns(taxonomy)],  # P(value expressed)
        *[pa.field(c, pa.bool_(), nullable=False) for c in label_columns(taxonomy)],  # p >= its threshold
        pa.field("registry_id", pa.string(), nullable=False),  # registry that scored the row
    ])


QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.string(), nullable=False),  # as in the scores table
        pa.field("source", pa.string(), nullable=False),  # input file
        pa.field("position", pa.int64(), nullable=False),  # 0-based row position (jsonl: line index)
        pa.field("reason", pa.string(), nullable=False),  # why it was not scored, e.g. "empty text"
        pa.field("raw", pa.string()),  # the offending value or line, cut to 1,000 characters
    ]
)

STATS_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),  # LLM name
        pa.field("scope", pa.string(), nullable=False),  # "value", "group" or "overall"
        pa.field("key", pa.string(), nullable=False),  # value id, group name (e.g. a level), or "all"
        pa.field("n", pa.int64(), nullable=False),  # rows (texts) in the group
        # then the columns of every statistic of audit.statistics.STATISTICS, each documented there
        # (mean, mean_lo, mean_hi, std, p10, p50, p90, pos_rate, pos_lo, pos_hi)
        *statistic_fields(),
    ]
)
