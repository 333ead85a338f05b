"""Read LLM-output corpora (jsonl, csv, parquet, xlsx) into rows to audit, keeping every bad row.

    for table in read_stream(open(paths[0], "rb"), paths[0], InputSpec(model_column="llm")):
        ...  # pyarrow Tables with RAW_SCHEMA, at most chunk_rows rows each

Every input row gives exactly one output row: `error` is null for a row to score, else the
quarantine reason (e.g. "empty text") with the offending value or line in `raw`. So rows in =
rows scored + rows quarantined, and row ids are unique within a file (a repeated id is
quarantined under "<source>:<position>"). Blank lines or rows at the very end of a file are not rows
(as a final newline is not); blank ones in the middle are quarantined as "blank line"/"blank row".

Long layout: one row per LLM output, with a text column and optional model, prompt, id and status
columns (`valuecsv-ray collect` writes them: a row whose status is not "ok" is quarantined with it).
Wide layout (`InputSpec.wide`): a question column and one answer column per LLM, as in
ValueCSV's quest100.xlsx; each (question, LLM) cell becomes one row at position
`r * n_llms + j`. jsonl has no header: its columns are the keys of the objects in the first
100 lines. `.json` files are read as JSON Lines. Plain Python, no Ray: the audit's
FileBasedDatasource hands its stream to `read_stream`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import NamedTuple, Protocol
from urllib.parse import urlparse

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq

from valuecsv_ray.config import InputSpec
from valuecsv_ray.errors import ValuecsvError

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".xlsx": "xlsx"}

# quarantine reasons (those with details are built where they occur)
BAD_ENCODING = "unreadable encoding (not UTF-8)"
BLANK_LINE = "blank line"  # jsonl
BLANK_ROW = "blank row"  # csv, xlsx
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
_BLOCK_BYTES = 1 << 20
_SNIFF_LINES = 100  # jsonl lines whose keys count as the file's columns
_PARQUET_BATCH = 10_000
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")  # undecodable bytes (surrogateescape) or lone JSON escapes


class InputError(ValuecsvError, ValueError):
    """An input spec or file cannot be read as asked; the message says which and how to fix it."""


class Readable(Protocol):
    """A binary stream; only read() is used, so it need not be seekable."""

    def read(self, size: int = -1, /) -> bytes: ...


class _Item(NamedTuple):
    """One input row: its cells by column, or None and why it could not be parsed."""

    record: dict | None
    error: str | None = None
    raw: str | None = None


def detect_format(path: str) -> str:
    """The format of a path or URI from its suffix: "jsonl", "csv", "parquet" or "xlsx"."""
    suffix = PurePosixPath(urlparse(path).path if "://" in path else path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}; "
            f"supported suffixes: {', '.join(sorted(FORMATS))}"
        )
    return FORMATS[suffix]


def read_stream(f: Readable, path: str, spec: InputSpec, chunk_rows: int = 10_000) -> Iterator[pa.Table]:
    """Tables with RAW_SCHEMA (at most chunk_rows rows each), one row per input row of `path`.

    Raises InputError when the file cannot be read at all or lacks the text (or question) column.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    reader = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet, "xlsx": _read_xlsx}
    columns, items = reader[detect_format(path)](f, path, spec)
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


def _long_rows(columns: list[str], items: Iterable[_Item], path: str, spec: InputSpec) -> Iterator[tuple]:
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
        yield _row(row_id, path, position, model, prompt, text, _Item(record, error))


def _wide_rows(columns: list[str], items: Iterable[_Item], path: str, spec: InputSpec) -> Iterator[tuple]:
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
            yield _row(row_id, path, position, model, prompt, text, _Item(item.record, error))


def _row(row_id: str, source: str, position: int, model: str, prompt: str | None, text: object,
         item: _Item) -> tuple:
    """A RAW_SCHEMA row; a bad one carries no text, and its value (or line) in raw."""
    if item.error is None:
        return row_id, source, position, model, prompt, text, None, None
    raw = item.raw if item.record is None else _render(text)
    raw = None if raw is None else _repair(raw[:_RAW_CHARS])
    prompt = None if prompt is None else _repair(prompt)
    return _repair(row_id), source, position, _repair(model), prompt, None, item.error, raw


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
    return BAD_ENCODING if _SURROGATE.search(text) else None


def _encoding_error(*values: str | None) -> str | None:
    return BAD_ENCODING if any(v is not None and _SURROGATE.search(v) for v in values) else None


def _repair(text: str) -> str:
    """Undecodable bytes shown as U+FFFD, so the string can be stored."""
    return _SURROGATE.sub("\ufffd", text)


def _render(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


# ---- formats: each returns (columns, one _Item per input row) --------------------------------


def _iter_lines(f: Readable) -> Iterator[bytes]:
    """Lines with their b"\\n" (the last may lack it), read in blocks; a leading BOM is dropped."""
    lines = _split_blocks(f)
    first = next(lines, None)
    if first is not None:
        yield first.removeprefix(_BOM)
        yield from lines


def _split_blocks(f: Readable) -> Iterator[bytes]:
    pending: list[bytes] = []  # the current line's pieces (kept apart: a long line costs no copies)
    while block := f.read(_BLOCK_BYTES):
        if b"\n" not in block:
            pending.append(block)
            continue
        lines = b"".join([*pending, block]).split(b"\n")
        pending = [lines.pop()]
        yield from (line + b"\n" for line in lines)
    if tail := b"".join(pending):
        yield tail


def _read_all(f: Readable) -> bytes:
    """All the bytes (a stream may give fewer than asked per read)."""
    return b"".join(iter(lambda: f.read(_BLOCK_BYTES), b""))


def _drop_trailing_blanks(items: Iterable[_Item]) -> Iterator[_Item]:
    """Blank rows pass on only when a non-blank row follows them."""
    pending: list[_Item] = []
    for item in items:
        if item.error in (BLANK_LINE, BLANK_ROW):
            pending.append(item)
            continue
        yield from pending
        pending.clear()
        yield item


def _read_jsonl(f: Readable, path: str, spec: InputSpec) -> tuple[list[str], Iterator[_Item]]:
    items = _drop_trailing_blanks(_jsonl_item(line) for line in _iter_lines(f))
    head = list(itertools.islice(items, _SNIFF_LINES))
    columns = list(dict.fromkeys(key for item in head if item.record for key in item.record))
    return columns, itertools.chain(head, items)


def _jsonl_item(line: bytes) -> _Item:
    if not line.strip():
        return _Item(None, BLANK_LINE)
    line = line.rstrip(b"\r\n")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return _Item(None, BAD_ENCODING, line.decode("utf-8", "replace"))
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        detail = f"{e.msg} (column {e.colno})" if isinstance(e, json.JSONDecodeError) else "nested too deep"
        return _Item(None, f"malformed JSON: {detail}", text)
    if not isinstance(value, dict):
        return _Item(None, f"malformed JSON: expected an object, found {_json_type(value)}", text)
    return _Item(value)


def _json_type(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return kinds.get(type(value), "null")


def _read_csv(f: Readable, path: str, spec: InputSpec) -> tuple[list[str], Iterator[_Item]]:
    reader = csv.reader(line.decode("utf-8", "surrogateescape") for line in _iter_lines(f))
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise InputError(f"{path}: unreadable CSV header ({e}); is it a CSV file?") from e
    if header is None:
        return [], iter(())
    columns = [_repair(name).strip() for name in header]
    return columns, _drop_trailing_blanks(_csv_items(reader, columns))


def _csv_items(reader: Iterator[list[str]], columns: list[str]) -> Iterator[_Item]:
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. a field over the csv module's size limit; the reader goes on
            yield _Item(None, f"malformed CSV row: {e}")
            continue
        if not any(field.strip() for field in fields):
            yield _Item(None, BLANK_ROW)
        elif len(fields) != len(columns):
            reason = f"malformed CSV row: {len(fields)} fields, the header has {len(columns)}"
            yield _Item(None, reason, ",".join(fields))
        else:
            yield _Item(dict(zip(columns, fields, strict=True)))


def _read_parquet(f: Readable, path: str, spec: InputSpec) -> tuple[list[str], Iterator[_Item]]:
    try:
        parquet = pq.ParquetFile(pa.BufferReader(_read_all(f)))
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from e
    batches = parquet.iter_batches(batch_size=_PARQUET_BATCH)
    items = (_Item(record) for batch in batches for record in batch.to_pylist())
    return parquet.schema_arrow.names, items


def _read_xlsx(f: Readable, path: str, spec: InputSpec) -> tuple[list[str], Iterator[_Item]]:
    try:
        book = openpyxl.load_workbook(io.BytesIO(_read_all(f)), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable xlsx workbook ({e})") from e
    if spec.sheet is not None and spec.sheet not in book.sheetnames:
        book.close()
        raise InputError(f"{path}: no sheet {spec.sheet!r}; its sheets are {book.sheetnames}")
    rows = (book[spec.sheet] if spec.sheet is not None else book.worksheets[0]).iter_rows(values_only=True)
    header = next(rows, None)
    columns = [] if header is None else ["" if c is None else str(c).strip() for c in header]
    return columns, _drop_trailing_blanks(_xlsx_items(book, rows, columns))


def _xlsx_items(book: openpyxl.Workbook, rows: Iterator[tuple], columns: list[str]) -> Iterator[_Item]:
    try:
        for row in rows:
            if all(_cell_str(cell) is None for cell in row):
                yield _Item(None, BLANK_ROW)
            else:  # cells past the header have no name and are left out
                yield _Item({c: v for c, v in zip(columns, row, strict=False) if c})
    finally:
        book.close()

