"""The table of input formats: every suffix through every reader of rows, and the unknown-suffix error."""

import io
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from valuecsv_ray.audit.readers import InputError, read_stream
from valuecsv_ray.collect.suites import SuiteError, load_suite
from valuecsv_ray.config import InputSpec
from valuecsv_ray.cvalues.pairs import PairsError, load_pairs
from valuecsv_ray.tables import BLANK_LINE, FORMATS, TableError, format_of, read_file, read_frame
from valuecsv_ray.taxonomy import load_taxonomy
from valuecsv_ray.train.annotated import DataError, load_annotated

LABELS = load_taxonomy().columns


def _records() -> list[dict]:
    """Rows every reader accepts: an audit corpus, training data, a prompt suite and user pairs."""
    return [{"id": f"r{i}", "model": "m0", "prompt": f"问题{i}", "text": f"第{i}段：诚实守信。",
             "question": f"问题{i}", "pos_resp": "好的回复", "neg_resp": f"坏的回复{i}",
             **{c: int(j == i) for j, c in enumerate(LABELS)}} for i in range(3)]


def _jsonl(frame: pd.DataFrame, path: Path) -> None:
    lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in frame.to_dict("records"))
    path.write_text("".join(lines), encoding="utf-8")


WRITERS = {  # one per suffix of FORMATS: a format added there needs a writer here to be tested
    ".jsonl": _jsonl,
    ".json": _jsonl,
    ".csv": lambda frame, path: frame.to_csv(path, index=False),
    ".parquet": lambda frame, path: frame.to_parquet(path, index=False),
    ".xlsx": lambda frame, path: frame.to_excel(path, index=False),
}


def _write(records: list[dict], path: Path) -> Path:
    WRITERS[path.suffix](pd.DataFrame(records), path)
    return path


def test_every_format_has_a_writer_in_this_test():
    assert set(WRITERS) == set(FORMATS)


def test_format_of_reads_suffixes_of_paths_and_uris():
    names = [format_of(p).name for p in ("a.JSONL", "b.json", "s3://b/dir/c.csv", "d.parquet", "gs://b/e.xlsx")]
    assert names == ["jsonl", "jsonl", "csv", "parquet", "xlsx"]


def test_unknown_suffix_names_the_file_and_every_supported_suffix():
    with pytest.raises(TableError) as e:
        format_of("s3://bucket/notes.tsv")
    assert str(e.value) == ("s3://bucket/notes.tsv: unknown file suffix '.tsv'; "
                            "supported: .csv, .json, .jsonl, .parquet, .xlsx")
    with pytest.raises(TableError, match=r"README: unknown file suffix '\(none\)'"):
        format_of("README")


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_format_through_the_tables_reader(tmp_path, suffix):
    path = _write(_records(), tmp_path / f"rows{suffix}")
    columns, rows, fmt = read_file(path)
    assert columns == list(_records()[0])
    assert [r.error for r in rows] == [None] * 3
    frame = read_frame(path)
    assert frame["id"].tolist() == ["r0", "r1", "r2"] and frame["text"].tolist()[2] == "第2段：诚实守信。"
    assert fmt.row_number(0) == {"jsonl": 1, "csv": 2, "parquet": 1, "xlsx": 2}[fmt.name]


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_format_through_the_audit_reader(tmp_path, suffix):
    path = _write(_records(), tmp_path / f"corpus{suffix}")
    with path.open("rb") as f:
        table = pa.concat_tables(read_stream(f, str(path), InputSpec()))
    assert table["row_id"].to_pylist() == ["r0", "r1", "r2"]
    assert table["text"].to_pylist() == [r["text"] for r in _records()]
    assert table["error"].null_count == 3


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_format_through_the_training_data_reader(tmp_path, suffix):
    data = load_annotated(_write(_records(), tmp_path / f"train{suffix}"))
    assert data.texts == [r["text"] for r in _records()]
    assert data.labels.tolist() == [[r[c] for c in LABELS] for r in _records()]


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_format_through_the_suite_reader(tmp_path, suffix):
    prompts, skipped = load_suite(str(_write(_records(), tmp_path / f"suite{suffix}")))
    assert prompts["prompt_id"].tolist() == ["suite:r0", "suite:r1", "suite:r2"] and skipped == []


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_format_through_the_pairs_reader(tmp_path, suffix):
    loaded = load_pairs(_write(_records(), tmp_path / f"pairs{suffix}"))
    assert loaded.source_format == "user"
    assert loaded.pairs["question"].tolist() == ["问题0", "问题1", "问题2"]


def test_every_reader_refuses_an_unknown_suffix_with_its_own_error(tmp_path):
    path = tmp_path / "rows.tsv"
    path.write_text("id\tprompt\n1\tp\n", encoding="utf-8")
    message = r"rows\.tsv: unknown file suffix '\.tsv'; supported: \.csv, \.json, \.jsonl, \.parquet, \.xlsx"
    with pytest.raises(InputError, match=message):
        list(read_stream(io.BytesIO(path.read_bytes()), str(path), InputSpec()))
    with pytest.raises(DataError, match=message):
        load_annotated(path)
    with pytest.raises(SuiteError, match=message):
        load_suite(str(path))
    with pytest.raises(PairsError, match=message):
        load_pairs(path)


def test_a_bad_row_keeps_its_place_and_blank_rows_are_rows_only_in_the_middle(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n\n[1, 2]\n{"id": "b"}\n\n\n', encoding="utf-8")
    columns, rows, fmt = read_file(path)
    assert columns == ["id"] and len(rows) == 4  # the blank lines at the end are not rows
    assert [r.error for r in rows[:2]] == [None, BLANK_LINE] and rows[2].raw == "[1, 2]"
    assert rows[2].error == "malformed JSON: expected an object, found an array"
    with pytest.raises(TableError, match=r"rows\.jsonl, line 3: malformed JSON"):
        read_frame(path)
