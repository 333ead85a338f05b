"""Tabular input files (jsonl, csv, parquet, xlsx): one table of formats that every reader of rows uses.

    fmt = format_of("answers.jsonl")                      # FORMATS[".jsonl"], or TableError
    columns, rows = fmt.read(open(path, "rb"), path)     # rows: one Row per input row, lazily
    columns, rows, fmt = read_file(path)                  # a local file, rows as a list
    frame = read_frame(path)                              # a DataFrame of object cells (no bad rows)

The audit's corpus readers, training data, prompt suites and CValues pairs read files through
FORMATS, so a format added here (one reader function and one entry) is known to all of them. A
reader turns a binary stream (only read() is used, so a Ray Data stream from object storage
works) into the file's columns and one Row per input row: its cells by column, or None with the
reason it could not be parsed (malformed JSON, a CSV row with too many fields, a blank line ...)
and the offending line. What to do with a bad row (quarantine it, skip it, refuse the file) is
the caller's choice; `Format.row_number` turns a row's 0-based position into the number users see.

Blank lines or rows at the very end of a file are not rows (as a final newline is not); blank ones
in the middle are rows with the reason BLANK_LINE/BLANK_ROW. jsonl (and `.json`, read as JSON
Lines) has no header: its columns are the keys of the objects in the first 100 lines. CSV bytes
that are not UTF-8 are kept as lone surrogates (see `undecodable`), so one bad cell spoils only
its row. No Ray, no torch.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple, Protocol
from urllib.parse import urlparse

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from valuecsv_ray.errors import ValuecsvError

# reasons a row could not be parsed (those with details are built where they occur)
BAD_ENCODING = "unreadable encoding (not UTF-8)"
BLANK_LINE = "blank line"  # jsonl
BLANK_ROW = "blank row"  # csv, xlsx

_BLOCK_BYTES = 1 << 20
_SNIFF_LINES = 100  # jsonl lines whose keys count as the file's columns
_PARQUET_BATCH = 10_000
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")  # undecodable bytes (surrogateescape) or lone JSON escapes


class TableError(ValuecsvError, ValueError):
    """A file that cannot be read as a table at all (unknown suffix, not a workbook ...)."""


class Readable(Protocol):
    """A binary stream; only read() is used, so it need not be seekable."""

    def read(self, size: int = -1, /) -> bytes: ...


class Row(NamedTuple):
    """One input row: its cells by column, or None, why it could not be parsed and its raw text."""

    record: dict | None
    error: str | None = None
    raw: str | None = None

    @property
    def blank(self) -> bool:
        return self.error in (BLANK_LINE, BLANK_ROW)


Reader = Callable[..., tuple[list[str], Iterator[Row]]]  # (f, path, *, sheet) -> (columns, rows)


@dataclass(frozen=True)
class Format:
    """A file format: its reader and how users count its rows."""

    name: str
    read: Reader
    first_row: int  # the number users see for the first row (a spreadsheet's header is row 1)
    unit: str  # what a row number counts: "line" or "row"
    header: bool = True  # False (jsonl): a row holds the keys it has, not every column of the file

    def row_number(self, position: int) -> int:
        return self.first_row + position


def format_of(path: str | Path) -> Format:
    """The format of a path or URI from its suffix; TableError naming the file for an unknown one."""
    text = str(path)
    suffix = PurePosixPath(urlparse(text).path if "://" in text else text).suffix.lower()
    if suffix not in FORMATS:
        raise TableError(
            f"{path}: unknown file suffix {suffix or '(none)'!r}; supported: {SUPPORTED}"
        )
    return FORMATS[suffix]


def read_file(path: str | Path, *, sheet: str | None = None) -> tuple[list[str], list[Row], Format]:
    """A local file's columns, all its rows and its format."""
    fmt = format_of(path)
    with open(path, "rb") as f:
        columns, rows = fmt.read(f, str(path), sheet=sheet)
        return columns, list(rows), fmt


def read_frame(path: str | Path, *, sheet: str | None = None) -> pd.DataFrame:
    """A local file as a DataFrame of object cells (ints stay ints); blank rows are left out and
    any other bad row is a TableError naming the file and row."""
    columns, rows, fmt = read_file(path, sheet=sheet)
    for position, row in enumerate(rows):
        if row.error is not None and not row.blank:
            raise TableError(f"{path}, {fmt.unit} {fmt.row_number(position)}: {row.error}")
    records = [row.record for row in rows if row.record is not None]
    return pd.DataFrame(records, dtype=object) if records else pd.DataFrame(columns=columns, dtype=object)


def undecodable(*values: object) -> bool:
    """True when a string holds bytes that were not UTF-8 (or a lone surrogate escape)."""
    return any(isinstance(v, str) and _SURROGATE.search(v) for v in values)


def repair(text: str) -> str:
    """Undecodable bytes shown as U+FFFD, so the string can be stored."""
    return _SURROGATE.sub("\ufffd", text)


# ---- byte streams -----------------------------------------------------------------------------


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


def _drop_trailing_blanks(rows: Iterable[Row]) -> Iterator[Row]:
    """Blank rows pass on only when a non-blank row follows them."""
    pending: list[Row] = []
    for row in rows:
        if row.blank:
            pending.append(row)
            continue
        yield from pending
        pending.clear()
        yield row


# ---- the formats: each reader returns (columns, one Row per input row) ------------------------


def read_jsonl(f: Readable, path: str, *, sheet: str | None = None) -> tuple[list[str], Iterator[Row]]:
    rows = _drop_trailing_blanks(_jsonl_row(line) for line in _iter_lines(f))
    head = list(itertools.islice(rows, _SNIFF_LINES))
    columns = list(dict.fromkeys(key for row in head if row.record for key in row.record))
    return columns, itertools.chain(head, rows)


def _jsonl_row(line: bytes) -> Row:
    if not line.strip():
        return Row(None, BLANK_LINE)
    line = line.rstrip(b"\r\n")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return Row(None, BAD_ENCODING, line.decode("utf-8", "replace"))
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        detail = f"{e.msg} (column {e.colno})" if isinstance(e, json.JSONDecodeError) else "nested too deep"
        return Row(None, f"malformed JSON: {detail}", text)
    if not isinstance(value, dict):
        return Row(None, f"malformed JSON: expected an object, found {_json_type(value)}", text)
    return Row(value)


def _json_type(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return kinds.get(type(value), "null")


def read_csv(f: Readable, path: str, *, sheet: str | None = None) -> tuple[list[str], Iterator[Row]]:
    reader = csv.reader(line.decode("utf-8", "surrogateescape") for line in _iter_lines(f))
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise TableError(f"{path}: unreadable CSV header ({e}); is it a CSV file?") from e
    if header is None:
        return [], iter(())
    columns = [repair(name).strip() for name in header]
    return columns, _drop_trailing_blanks(_csv_rows(reader, columns))


def _csv_rows(reader: Iterator[list[str]], columns: list[str]) -> Iterator[Row]:
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. a field over the csv module's size limit; the reader goes on
            yield Row(None, f"malformed CSV row: {e}")
            continue
        if not any(field.strip() for field in fields):
            yield Row(None, BLANK_ROW)
        elif len(fields) != len(columns):
            reason = f"malformed CSV row: {len(fields)} fields, the header has {len(columns)}"
            yield Row(None, reason, ",".join(fields))
        else:
            yield Row(dict(zip(columns, fields, strict=True)))


def read_parquet(f: Readable, path: str, *, sheet: str | None = None) -> tuple[list[str], Iterator[Row]]:
    try:
        parquet = pq.ParquetFile(pa.BufferReader(_read_all(f)))
    except (pa.ArrowException, OSError) as e:
        raise TableError(f"{path}: not a readable Parquet file ({e})") from e
    batches = parquet.iter_batches(batch_size=_PARQUET_BATCH)
    rows = (Row(record) for batch in batches for record in batch.to_pylist())
    return parquet.schema_arrow.names, rows


def read_xlsx(f: Readable, path: str, *, sheet: str | None = None) -> tuple[list[str], Iterator[Row]]:
    """The first sheet, or the one named `sheet`; the first row is the header."""
    try:
        book = openpyxl.load_workbook(io.BytesIO(_read_all(f)), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise TableError(f"{path}: not a readable xlsx workbook ({e})") from e
    if sheet is not None and sheet not in book.sheetnames:
        book.close()
        raise TableError(f"{path}: no sheet {sheet!r}; its sheets are {book.sheetnames}")
    rows = (book[sheet] if sheet is not None else book.worksheets[0]).iter_rows(values_only=True)
    header = next(rows, None)
    columns = [] if header is None else ["" if c is None else str(c).strip() for c in header]
    return columns, _drop_trailing_blanks(_xlsx_rows(book, rows, columns))


def _xlsx_rows(book: openpyxl.Workbook, rows: Iterator[tuple], columns: list[str]) -> Iterator[Row]:
    try:
        for cells in rows:
            if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                yield Row(None, BLANK_ROW)
            else:  # cells past the header have no name and are left out
                yield Row({c: v for c, v in zip(columns, cells, strict=False) if c})
    finally:
        book.close()


_JSONL = Format("jsonl", read_jsonl, first_row=1, unit="line", header=False)
FORMATS: dict[str, Format] = {  # suffix -> format; one entry here makes a format known to every reader
    ".jsonl": _JSONL,
    ".json": _JSONL,  # read as JSON Lines
    ".csv": Format("csv", read_csv, first_row=2, unit="row"),
    ".parquet": Format("parquet", read_parquet, first_row=1, unit="row"),
    ".xlsx": Format("xlsx", read_xlsx, first_row=2, unit="row"),
}
SUPPORTED = ", ".join(sorted(FORMATS))  # for messages and help texts
