"""Loading annotated data: the real ValueCSV5000 file, and bad rows in every format."""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import valuecsv_ray
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy
from valuecsv_ray.train.annotated import (
    TEXT_COLUMN,
    DataError,
    load_annotated,
    resolve_data_path,
    write_bad_rows,
)

LABEL_COLUMNS = load_taxonomy().columns
FREEDOM, JUSTICE, HARMONY = LABEL_COLUMNS[4], LABEL_COLUMNS[6], LABEL_COLUMNS[3]

# ---------------------------------------------------------------- the real file


def test_valuecsv5000_loads_4999_samples(valuecsv5000):
    assert len(valuecsv5000) == 4999
    assert valuecsv5000.labels.shape == (4999, 12)
    assert set(np.unique(valuecsv5000.labels)) == {0, 1}
    assert valuecsv5000.bad_rows == []
    assert valuecsv5000.rows[0] == 2 and valuecsv5000.rows[-1] == 5000
    assert all(isinstance(t, str) and t.strip() for t in valuecsv5000.texts)


def test_valuecsv5000_column_sum_row_is_excluded_and_logged(shared_data, valuecsv5000, caplog):
    with caplog.at_level(logging.INFO, logger="valuecsv_ray.train.annotated"):
        again = load_annotated(shared_data / "ValueCSV5000.xlsx")
    assert len(again.excluded) == 1
    assert "row 5001" in again.excluded[0] and "column-sum" in again.excluded[0]
    infos = [r for r in caplog.records
             if r.levelno == logging.INFO and r.name == "valuecsv_ray.train.annotated"]
    assert any("row 5001" in r.getMessage() and "column-sum" in r.getMessage() for r in infos)
    assert again.sha256 == valuecsv5000.sha256
    assert re.fullmatch(r"[0-9a-f]{64}", again.sha256)


# ---------------------------------------------------------------- handmade files with bad rows


def _record(text, **labels) -> dict:
    """A row with every label 0 except those given."""
    return {TEXT_COLUMN: text, **{c: 0 for c in LABEL_COLUMNS}, **labels}


GOOD = [
    _record("富强民主，文明和谐。", **{LABEL_COLUMNS[0]: 1, LABEL_COLUMNS[1]: 1}),
    _record("他说：“我们要讲诚信。” OK", **{LABEL_COLUMNS[10]: 1}),
    _record("法治社会人人平等", **{LABEL_COLUMNS[7]: 1, LABEL_COLUMNS[5]: 1}),
    _record("一段普通的文字"),
]
# (record, column, reason fragment) for each bad row, in file order after the good ones
BAD = [
    (_record(""), TEXT_COLUMN, "empty or non-string text"),
    (_record("标签为二", **{FREEDOM: 2}), FREEDOM, "is not 0 or 1"),
    (_record("标签为字母", **{JUSTICE: "x"}), JUSTICE, "is not 0 or 1"),
    (_record("标签为空", **{HARMONY: ""}), HARMONY, "empty label"),
]
FIRST_ROW = {"csv": 2, "xlsx": 2, "jsonl": 1, "parquet": 1}  # the row number users see for row 0


def _write(records: list[dict], path: Path) -> Path:
    """Write records as csv, xlsx, jsonl or parquet (chosen by the suffix)."""
    frame = pd.DataFrame(records, columns=list(records[0]))
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".xlsx":
        frame.to_excel(path, index=False)
    elif path.suffix == ".parquet":  # one type per column: labels as strings
        frame = frame.astype({c: "string" for c in LABEL_COLUMNS if c in frame.columns})
        frame.to_parquet(path, index=False)
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def _bad_file(tmp_path: Path, fmt: str) -> tuple[Path, list[tuple[int, str, str]], int]:
    """A file of good rows and bad rows; returns it, the expected problems and its row count."""
    records = GOOD[:2] + [r for r, _, _ in BAD] + GOOD[2:]
    first = FIRST_ROW[fmt]
    expected = [(first + 2 + i, column, reason) for i, (_, column, reason) in enumerate(BAD)]
    path = _write(records, tmp_path / f"bad.{fmt}")
    n_rows = len(records)
    if fmt == "jsonl":  # two problems only a jsonl file can have
        missing_key = {k: v for k, v in GOOD[0].items() if k != JUSTICE}
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(missing_key, ensure_ascii=False) + "\n")
            fh.write('{"text": "半截的行", "Prosperity_scr": \n')
        expected += [(n_rows + 1, JUSTICE, "missing column"), (n_rows + 2, "", "malformed JSON")]
        n_rows += 2
    return path, expected, n_rows


FORMATS = ["csv", "xlsx", "jsonl", "parquet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_rows_error_names_file_row_column_and_fix(tmp_path, fmt):
    path, expected, _ = _bad_file(tmp_path, fmt)
    with pytest.raises(DataError) as e:
        load_annotated(path)
    message = str(e.value)
    assert str(path) in message
    assert "--skip-bad-rows" in message
    for row, column, reason in expected:
        where = f"row {row}, column '{column}'" if column else f"row {row}:"
        line = next((x for x in message.splitlines() if x.strip().startswith(where)), None)
        assert line is not None, f"{where!r} not in:\n{message}"
        assert reason in line


@pytest.mark.parametrize("fmt", FORMATS)
def test_skip_bad_rows_keeps_good_rows_and_reports_the_rest(tmp_path, fmt):
    path, expected, n_rows = _bad_file(tmp_path, fmt)
    data = load_annotated(path, skip_bad_rows=True)

    assert data.texts == [r[TEXT_COLUMN] for r in GOOD]
    good_labels = np.array([[r[c] for c in LABEL_COLUMNS] for r in GOOD])
    np.testing.assert_array_equal(data.labels, good_labels)
    first = FIRST_ROW[fmt]
    assert data.rows == [first, first + 1, first + 2 + len(BAD), first + 3 + len(BAD)]

    found = sorted((b.row, b.column, b.reason) for b in data.bad_rows)
    assert len(found) == len(expected)
    for (row, column, reason), (b_row, b_column, b_reason) in zip(expected, found, strict=True):
        assert (b_row, b_column) == (row, column)
        assert reason in b_reason
    assert all(b.file == str(path) for b in data.bad_rows)
    assert len(data) + len({b.row for b in data.bad_rows}) == n_rows


def test_write_bad_rows_reads_back(tmp_path):
    path, _, _ = _bad_file(tmp_path, "jsonl")
    data = load_annotated(path, skip_bad_rows=True)
    report = tmp_path / "bad_rows.csv"
    write_bad_rows(data.bad_rows, report)

    back = pd.read_csv(report, dtype=str, keep_default_na=False)
    assert list(back.columns) == ["file", "row", "column", "reason", "text"]
    assert len(back) == len(data.bad_rows)
    for (_, got), b in zip(back.iterrows(), data.bad_rows, strict=True):
        assert (got["file"], int(got["row"]), got["column"], got["reason"], got["text"]) == (
            b.file,
            b.row,
            b.column,
            b.reason,
            b.text,
        )


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_missing_column_names_file_and_column(tmp_path, fmt):
    records = [{k: v for k, v in r.items() if k != JUSTICE} for r in GOOD]
    path = _write(records, tmp_path / f"no_column.{fmt}")
    with pytest.raises(DataError) as e:
        load_annotated(path)
    assert str(path) in str(e.value)
    assert JUSTICE in str(e.value) and "missing column" in str(e.value)


def test_column_missing_from_every_jsonl_line_is_reported(tmp_path):
    records = [{k: v for k, v in r.items() if k != JUSTICE} for r in GOOD]
    path = _write(records, tmp_path / "no_column.jsonl")
    with pytest.raises(DataError) as e:
        load_annotated(path)
    assert f"row 1, column '{JUSTICE}': missing column" in str(e.value)


def _with_sums(records: list[dict]) -> dict:
    return _record("", **{c: sum(r[c] for r in records) for c in LABEL_COLUMNS})


def test_trailing_column_sum_row_is_excluded_in_csv(tmp_path, caplog):
    path = _write([*GOOD, _with_sums(GOOD)], tmp_path / "summed.csv")
    with caplog.at_level(logging.INFO, logger="valuecsv_ray.train.annotated"):
        data = load_annotated(path)
    assert len(data) == len(GOOD)
    assert data.excluded == [f"{path} row {len(GOOD) + 2}: column-sum row (empty text, label totals)"]
    assert any("column-sum" in r.getMessage() for r in caplog.records)


def test_trailing_empty_text_row_that_is_not_a_sum_is_an_error(tmp_path):
    not_sums = _with_sums(GOOD)
    not_sums[LABEL_COLUMNS[0]] += 1
    path = _write([*GOOD, not_sums], tmp_path / "trailing.csv")
    with pytest.raises(DataError, match=rf"row {len(GOOD) + 2}, column '{TEXT_COLUMN}'"):
        load_annotated(path)
    data = load_annotated(path, skip_bad_rows=True)
    assert data.excluded == []
    assert {b.row for b in data.bad_rows} == {len(GOOD) + 2}
    assert len(data) == len(GOOD)


def test_limit_keeps_the_first_rows(tmp_path):
    path = _write(GOOD, tmp_path / "good.csv")
    data = load_annotated(path, limit=2)
    assert data.texts == [r[TEXT_COLUMN] for r in GOOD[:2]]
    assert data.labels.shape == (2, len(LABEL_COLUMNS))


def test_sha256_does_not_depend_on_the_file_format(tmp_path):
    hashes = {load_annotated(_write(GOOD, tmp_path / f"good.{fmt}")).sha256 for fmt in FORMATS}
    assert len(hashes) == 1


def test_null_label_in_jsonl_is_reported_as_empty_label(tmp_path):
    path = _write([GOOD[0], _record("空标签", **{HARMONY: None})], tmp_path / "null.jsonl")
    data = load_annotated(path, skip_bad_rows=True)
    assert [(b.row, b.column, b.reason) for b in data.bad_rows] == [(2, HARMONY, "empty label")]


# ---------------------------------------------------------------- another taxonomy

TWO = Taxonomy.from_dict({"name": "two", "groups": ["g"], "labels": [
    {"id": "thrift", "group": "g", "column": "Thrift"}, {"id": "care", "group": "g", "column": "Care"}]})


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_labels_follow_the_taxonomys_columns_in_its_order(tmp_path, fmt):
    records = [{"Care": 1, TEXT_COLUMN: "关心他人", "Thrift": 0, FREEDOM: 7},  # other columns ignored
               {"Care": 0, TEXT_COLUMN: "勤俭节约", "Thrift": 1, FREEDOM: 7},
               {"Care": 1, TEXT_COLUMN: "省钱帮人", "Thrift": 1, FREEDOM: 7}]
    data = load_annotated(_write(records, tmp_path / f"two.{fmt}"), TWO)
    assert data.texts == ["关心他人", "勤俭节约", "省钱帮人"]
    np.testing.assert_array_equal(data.labels, [[0, 1], [1, 0], [1, 1]])  # Thrift, then Care
    with pytest.raises(DataError, match="missing column"):
        load_annotated(_write(GOOD, tmp_path / f"default.{fmt}"), TWO)


def test_missing_taxonomy_column_names_the_taxonomy_columns(tmp_path):
    path = _write([{TEXT_COLUMN: "关心他人", "Care": 1}], tmp_path / "one.csv")
    with pytest.raises(DataError) as e:
        load_annotated(path, TWO)
    assert "missing column(s) ['Thrift']" in str(e.value)
    assert "['Thrift', 'Care']" in str(e.value)


# ---------------------------------------------------------------- paths


def test_resolve_sample_points_to_shipped_file():
    path = resolve_data_path("sample")
    assert path == Path(valuecsv_ray.__file__).parent / "resources" / "sample_annotated.jsonl"
    assert path.is_file()


def test_nonexistent_path_says_how_to_get_data(tmp_path):
    missing = tmp_path / "nowhere.xlsx"
    with pytest.raises(DataError) as e:
        load_annotated(missing)
    assert str(missing) in str(e.value)
    assert "valuecsv-ray data fetch" in str(e.value)


def test_unsupported_suffix_is_refused(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.txt: unknown file suffix '\.txt'; supported: \.csv"):
        resolve_data_path(path)
