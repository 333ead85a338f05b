"""Rows to audit from LLM-output corpora, keeping every bad row (the formats: `valuecsv_ray.tables`).

    for table in read_stream(open(paths[0], "rb"), paths[0], InputSpec(model_column="llm")):
        ...  # pyarrow Tables with RAW_SCHEMA, at most chunk_rows rows each

Every input row gives exactly one output row: `error` is null for a row to score, else the
quarantine reason (e.g. "empty text", or why the row could not be parsed) with the offending value
or line in `raw`. So rows in = rows scored + rows quarantined, and row ids are unique within a file
(a repeated id is quarantined under "<source>:<position>"). Blank lines or rows at the very end of
a file are not rows; blank ones in the middle are quarantined as "blank line"/"blank row".

Long layout: one row per LLM output, with a text column and optional model, prompt, id and status
columns (`valuecsv-ray collect` writes them: a row whose status is not "ok" is quarantined with it).
Wide layout (`InputSpec.wide`): a question column and one answer column per LLM, as in
ValueCSV's quest100.xlsx; each (question, LLM) cell becomes one row at position
`r * n_llms + j`. Any format of `valuecsv_ray.tables.FORMATS` is read. Plain Python, no Ray: the
audit's FileBasedDatasource hands its stream to `read_stream`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Iterator

import pyarrow as pa

from valuecsv_ray.config import InputSpec
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.tables import (
    BAD_ENCODING,
    BLANK_LINE,
    BLANK_ROW,
    Readable,
    Row,
    TableError,
    format_of,
    repair,
    undecodable,
)

__all__ = ["BAD_ENCODING", "BLANK_LINE", "BLANK_ROW", "EMPTY_TEXT", "MISSING_TEXT", "NO_QUESTION",
           "RAW_SCHEMA", "InputError", "read_stream"]

# quarantine reasons of the row checks (a row that could not be parsed carries the tables' reason)
MISSING_TEXT = "missing text"
EMPTY_TEXT = "empty text"
NO_QUESTION = "wide row without a question"

RAW_SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.string(), nullable=False),  # the id column's value, else "<source>:<position>"
        pa.field("source", pa.string(), nullable=False),  # the input path or URI, as given
        pa.field("position", pa.int64(), nullable=False),  # 0-based row in the file (wide: r * n_llms + j)
        pa.field("model", pa.string(), nullable=False),  # LLM that wrote the text; default_model if none
        pa.field("prompt", pa.string()),  # the prompt / question, null when the input has none
        pa.field("text", pa.string()),  # the LLM output to score; null when the row cannot be scored
        pa.field("error", pa.string()),  # quarantine reason; null for a row to score
        pa.field("raw", pa.string()),  # bad rows only: the offending value or line, cut to 1,000 chars
    ]
)

_RAW_CHARS = 1_000


class InputError(ValuecsvError, ValueError):
    """An input spec or file cannot be read as asked; the message says which and how to fix it."""


def read_stream(f: Readable, path: str, spec: InputSpec, chunk_rows: int = 10_000) -> Iterator[pa.Table]:
    """Tables with RAW_SCHEMA (at most chunk_rows rows each), one row per input row of `path`.

    Raises InputError when the file cannot be read at all or lacks the text (or question) column.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    try:
        columns, items = format_of(path).read(f, path, sheet=spec.sheet)
    except TableError as e:
        raise InputError(str(e)) from e
    first = next(items, None)
    if first is None and not columns:
        return  # an empty file holds no rows
    items = itertools.chain([] if first is None else [first], items)
    rows = _wide_rows(columns, items, path, spec) if spec.wide else _long_rows(columns, items, path, spec)
    while batch := list(itertools.islice(rows, chunk_rows)):
        by_column = zip(*batch, strict=True)
        arrays = [pa.array(c, type=field.type) for c, field in zip(by_column, RAW_SCHEMA, strict=True)]
        yield pa.Table.from_arrays(arrays, schema=RAW_SCHEMA)


# ---- rows -------------------------------------------------------------------------------------


def _long_rows(columns: list[str], items: Iterable[Row], path: str, spec: InputSpec) -> Iterator[tuple]:
    text_column = _text_column(columns, spec, path)
    seen_ids: set[str] = set()
    for position, item in enumerate(items):
        record = item.record
        if record is None:
            yield _row(f"{path}:{position}", path, position, spec.default_model, None, None, item)
            continue
        given_id = _cell_str(record.get(spec.id_column))
        row_id = given_id if given_id is not None else f"{path}:{position}"
        model = _cell_str(record.get(spec.model_column)) or spec.default_model
        prompt = _cell_str(record.get(spec.prompt_column))
        text = record.get(text_column)
        error = _status_error(record, spec) or _text_error(text) or _encoding_error(row_id, model, prompt)
        if given_id in seen_ids:  # keeps row ids unique: the repeat gets its position as id
            error, row_id = error or f"duplicate id: {given_id}", f"{path}:{position}"
        elif given_id is not None:
            seen_ids.add(given_id)
        yield _row(row_id, path, position, model, prompt, text, Row(record, error))


def _wide_rows(columns: list[str], items: Iterable[Row], path: str, spec: InputSpec) -> Iterator[tuple]:
    question_column, models = _wide_columns(columns, spec, path)
    for r, item in enumerate(items):
        question = _cell_str(item.record.get(question_column)) if item.record else None
        prompt = question.strip() if question else None
        for j, model in enumerate(models):
            position, row_id = r * len(models) + j, f"{path}:{r}:{model}"
            if item.record is None:
                yield _row(row_id, path, position, model, None, None, item)
                continue
            text = item.record.get(model)
            error = (_text_error(text) or _encoding_error(prompt)) if prompt else NO_QUESTION
            yield _row(row_id, path, position, model, prompt, text, Row(item.record, error))


def _row(row_id: str, source: str, position: int, model: str, prompt: str | None, text: object,
         item: Row) -> tuple:
    """A RAW_SCHEMA row; a bad one carries no text, and its value (or line) in raw."""
    if item.error is None:
        return row_id, source, position, model, prompt, text, None, None
    raw = item.raw if item.record is None else _render(text)
    raw = None if raw is None else repair(raw[:_RAW_CHARS])
    prompt = None if prompt is None else repair(prompt)
    return repair(row_id), source, position, repair(model), prompt, None, item.error, raw


def _text_column(columns: list[str], spec: InputSpec, path: str) -> str:
    name = spec.text_column or ("response" if "response" in columns else "text")
    if columns and name not in columns:  # no columns: a jsonl without objects in its first lines
        wanted = repr(name) if spec.text_column else "'response' or 'text'"
        raise InputError(
            f"{path}: no text column {wanted}; the file's columns are {columns}. "
            "Name the column holding the LLM outputs with text_column (--text-column NAME)."
        )
    return name


def _wide_columns(columns: list[str], spec: InputSpec, path: str) -> tuple[str, list[str]]:
    """The question column and the answer (LLM) columns of a wide file."""
    named = [c for c in columns if isinstance(c, str) and c.strip()]
    question = spec.question_column or (named[0] if named else None)
    if question not in named:
        raise InputError(
            f"{path}: no question column {question!r} for the wide layout; the file's columns are "
            f"{columns}. Name it with question_column (--question-column NAME)."
        )
    models = [c for c in named if c != question]
    if twice := sorted({c for c in models if models.count(c) > 1}):
        raise InputError(f"{path}: LLM columns {twice} appear more than once in the header; rename them")
    if not models:
        raise InputError(
            f"{path}: the wide layout needs one answer column per LLM besides the question column "
            f"{question!r}; the file's columns are {columns}. Is it a long file (drop --wide)?"
        )
    return question, models


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell_str(value: object) -> str | None:
    """A cell as a string; None when missing or blank."""
    if _is_missing(value):
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def _status_error(record: dict, spec: InputSpec) -> str | None:
    """A collected row that holds no answer: "response status <status>: <its error>"."""
    status = _cell_str(record.get(spec.status_column))
    if status is None or status == "ok":
        return None
    detail = _cell_str(record.get("error"))
    return f"response status {status}" + (f": {detail}" if detail else "")


def _text_error(text: object) -> str | None:
    if _is_missing(text):
        return MISSING_TEXT
    if not isinstance(text, str):
        return f"non-string text ({type(text).__name__})"
    if not text.strip():
        return EMPTY_TEXT
    return BAD_ENCODING if undecodable(text) else None


def _encoding_error(*values: str | None) -> str | None:
    return BAD_ENCODING if undecodable(*values) else None


def _render(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
