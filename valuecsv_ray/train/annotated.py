"""Load and validate annotated data (any format of `valuecsv_ray.tables`) for training evaluators.

    data = load_annotated("ValueCSV5000.xlsx")          # raises on bad rows
    data = load_annotated(path, skip_bad_rows=True)      # bad rows listed in data.bad_rows

A file holds a text column and one label column per label of the job's taxonomy (for the
default one, `Prosperity_scr` ... as in ValueCSV5000), each 0 or 1. A trailing column-sum
row (empty text, each label the sum of its column, as ValueCSV5000.xlsx ends) is recognised,
excluded and logged. Every other bad row is an error naming file, row and column, or, with
`skip_bad_rows`, a `BadRow` the caller writes to a report. Nothing is dropped silently.

Row numbers follow what a user sees when opening the file: spreadsheet rows for xlsx
and csv (the header is row 1), line numbers for jsonl, 1-based rows for parquet. Blank rows
are not samples and are passed over.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.tables import BAD_ENCODING, FORMATS, TableError, format_of, read_file, repair, undecodable
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

TEXT_COLUMN = "text"
SAMPLE = "sample"  # name of the annotated sample that ships with the package
_MAX_ERRORS_SHOWN = 10


class DataError(ValuecsvError, ValueError):
    """An input file cannot be used as annotated data; the message says where and why."""


@dataclass(frozen=True)
class BadRow:
    """A row left out of the data, with where it was and why."""

    file: str
    row: int
    column: str
    reason: str
    text: str = ""


@dataclass(frozen=True)
class AnnotatedData:
    """Validated texts and their 0/1 labels, one column per label of the taxonomy, in its order."""

    source: str
    texts: list[str]
    labels: np.ndarray  # shape (n, n_labels), int8, columns in taxonomy order
    rows: list[int]  # the source row number of each sample
    bad_rows: list[BadRow] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # rows recognised and left out

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def sha256(self) -> str:
        """Hash of the samples (texts and labels), independent of file format."""
        h = hashlib.sha256()
        for text, row in zip(self.texts, self.labels, strict=True):
            h.update(text.encode("utf-8") + b"\x1f" + bytes(row.astype(np.uint8)) + b"\x1e")
        return h.hexdigest()

    def subset(self, n: int) -> AnnotatedData:
        """The first n samples (for quick runs and tests)."""
        return AnnotatedData(
            self.source, self.texts[:n], self.labels[:n], self.rows[:n], self.bad_rows,
            self.excluded,
        )


def sample_path() -> Path:
    """The annotated sample shipped with the package (written for this project)."""
    return Path(str(resources.files("valuecsv_ray") / "resources" / "sample_annotated.jsonl"))


def resolve_data_path(spec: str | Path) -> Path:
    """`sample` means the shipped sample; anything else is a path that must exist."""
    path = sample_path() if str(spec) == SAMPLE else Path(spec).expanduser()
    if not path.is_file():
        raise DataError(
            f"data file {path} does not exist. Pass --data PATH to a {'/'.join(sorted(FORMATS))} "
            f"file, '--data {SAMPLE}' for the shipped sample, or run "
            "`valuecsv-ray data fetch` to download ValueCSV5000.xlsx."
        )
    try:
        format_of(path)
    except TableError as e:
        raise DataError(str(e)) from e
    return path


def _read_table(path: Path, columns: tuple[str, ...]) -> tuple[list[dict], list[int], list[BadRow]]:
    """Read a file into records of raw cells, the row number of each, and unparsable rows.

    A key absent from a record means a missing field (possible in jsonl only); a present key
    holding None/NaN means an empty cell.
    """
    try:
        found, rows, fmt = read_file(path)
    except TableError as e:
        raise DataError(str(e)) from e
    if fmt.header:
        _check_columns(found, path, columns)
    records, numbers, bad = [], [], []
    for position, row in enumerate(rows):
        if row.record is not None:
            records.append(row.record)
            numbers.append(fmt.row_number(position))
        elif not row.blank:
            bad.append(BadRow(str(path), fmt.row_number(position), "", row.error, (row.raw or "")[:80]))
    return records, numbers, bad


def _is_blank(cell: object) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell)) or (
        isinstance(cell, str) and not cell.strip()
    )


def _label(cell: object) -> int | None:
    """0 or 1 from an int, an integral float or a digit string; None when not a label."""
    if isinstance(cell, bool) or _is_blank(cell):
        return None
    try:
        number = float(str(cell).strip()) if isinstance(cell, str) else float(cell)
    except (TypeError, ValueError):
        return None
    return int(number) if number in (0.0, 1.0) else None


def _check_columns(columns: list, path: Path, label_columns: tuple[str, ...]) -> None:
    """Tabular files must have every column (jsonl lines are checked one by one)."""
    missing = [c for c in (TEXT_COLUMN, *label_columns) if c not in columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}. Found {columns}. "
            f"Annotated data needs '{TEXT_COLUMN}' and one 0/1 column per value: "
            f"{list(label_columns)} (the columns of the job's taxonomy)."
        )


def _number(cell: object) -> float | None:
    try:
        number = float(cell)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _is_column_sum_row(records: list[dict], label_columns: tuple[str, ...]) -> bool:
    """True when the last record has no text and each label sums the labels above it."""
    last, above = records[-1], records[:-1]
    if not _is_blank(last.get(TEXT_COLUMN)) or not above:
        return False
    for column in label_columns:
        cell = _number(last.get(column))
        total = sum(_number(r.get(column)) or 0.0 for r in above)
        if cell is None or cell != total:
            return False
    return True


def _row_problems(record: dict, path: Path, row: int, label_columns: tuple[str, ...]) -> list[BadRow]:
    problems = []
    text = record.get(TEXT_COLUMN)
    preview = repair(text[:80]) if isinstance(text, str) else ""
    if TEXT_COLUMN not in record:
        problems.append(BadRow(str(path), row, TEXT_COLUMN, "missing column"))
    elif not isinstance(text, str) or not text.strip():
        problems.append(BadRow(str(path), row, TEXT_COLUMN, "empty or non-string text"))
    elif undecodable(text):
        problems.append(BadRow(str(path), row, TEXT_COLUMN, BAD_ENCODING, preview))
    for column in label_columns:
        if column not in record:
            problems.append(BadRow(str(path), row, column, "missing column", preview))
        elif _label(record[column]) is None:
            cell = record[column]
            reason = "empty label" if _is_blank(cell) else f"label {cell!r} is not 0 or 1"
            problems.append(BadRow(str(path), row, column, reason, preview))
    return problems


def load_annotated(
    spec: str | Path, taxonomy: Taxonomy | None = None, *, skip_bad_rows: bool = False,
    limit: int | None = None,
) -> AnnotatedData:
    """Load and validate an annotated file with one 0/1 column per label of `taxonomy` (default:
    the built-in one); see the module docstring for the rules."""
    path = resolve_data_path(spec)
    columns = (taxonomy or load_taxonomy()).columns
    records, row_numbers, bad = _read_table(path, columns)
    if not records and not bad:
        raise DataError(f"{path}: no rows found")
    excluded = []
    if records and _is_column_sum_row(records, columns):
        note = f"{path} row {row_numbers[-1]}: column-sum row (empty text, label totals)"
        log.info("excluded %s; it is a summary, not a sample", note)
        excluded.append(note)
        records, row_numbers = records[:-1], row_numbers[:-1]
    texts, labels, rows = [], [], []
    for record, row in zip(records, row_numbers, strict=True):
        problems = _row_problems(record, path, row, columns)
        if problems:
            bad.extend(problems)
            continue
        texts.append(record[TEXT_COLUMN])
        labels.append([_label(record[c]) for c in columns])
        rows.append(row)
    if bad and not skip_bad_rows:
        raise DataError(_bad_rows_message(path, bad))
    if bad:
        log.warning("%s: %d problem(s) in bad rows left out; see the report", path, len(bad))
    data = AnnotatedData(
        str(path), texts, np.asarray(labels, dtype=np.int8).reshape(-1, len(columns)), rows,
        bad, excluded,
    )
    if not len(data):
        raise DataError(f"{path}: no valid samples left after validation")
    return data.subset(limit) if limit else data


def _bad_rows_message(path: Path, bad: list[BadRow]) -> str:
    lines = [f"{path}: {len(bad)} problem(s) in {len({b.row for b in bad})} row(s):"]
    lines += [
        f"  row {b.row}" + (f", column '{b.column}'" if b.column else "") + f": {b.reason}"
        for b in bad[:_MAX_ERRORS_SHOWN]
    ]
    if len(bad) > _MAX_ERRORS_SHOWN:
        lines.append(f"  ... and {len(bad) - _MAX_ERRORS_SHOWN} more")
    lines.append(
        "Fix these rows, or pass --skip-bad-rows to leave them out; they are then written "
        "to bad_rows.csv in the run folder with the reason."
    )
    return "\n".join(lines)


def write_bad_rows(bad: list[BadRow], path: Path) -> None:
    """Write the bad-row report as CSV (file, row, column, reason, text)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "row", "column", "reason", "text"])
        writer.writerows([b.file, b.row, b.column, b.reason, b.text] for b in bad)
