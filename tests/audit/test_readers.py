"""Corpus readers: every input row gives one RAW_SCHEMA row, bad rows carry exact reasons."""

import io
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from valuecsv_ray.audit.paths import expand_inputs
from valuecsv_ray.audit.readers import (
    BAD_ENCODING,
    BLANK_LINE,
    BLANK_ROW,
    EMPTY_TEXT,
    MISSING_TEXT,
    NO_QUESTION,
    RAW_SCHEMA,
    InputError,
    InputSpec,
    read_stream,
)
from valuecsv_ray.audit.schema import UNKNOWN_MODEL

QUEST100_MODELS = ["chatglm3-6b", "Baichuan4", "glm-4", "claude-3-opus-20240229", "gpt4", "llama2"]


class Trickle:
    """A non-seekable stream with only read(), giving at most `step` bytes per call."""

    def __init__(self, data: bytes, step: int = 7):
        self._buffer, self._step = io.BytesIO(data), step

    def read(self, size: int = -1) -> bytes:
        return self._buffer.read(self._step if size < 0 else min(size, self._step))


def read_all(data: bytes, path: str, spec: InputSpec | None = None, chunk_rows: int = 10_000,
             stream=io.BytesIO) -> pa.Table:
    tables = list(read_stream(stream(data), path, spec or InputSpec(), chunk_rows))
    assert all(t.schema == RAW_SCHEMA and t.num_rows <= chunk_rows for t in tables)
    return pa.concat_tables(tables) if tables else RAW_SCHEMA.empty_table()


def errors(table: pa.Table) -> dict[int, str]:
    return {r["position"]: r["error"] for r in table.to_pylist() if r["error"] is not None}


JSONL_LINES = [
    b'{"id": "a", "model": "m1", "prompt": "p1", "response": "good one"}',  # 0
    b'{"id": "b", "response": "cut off"',  # 1 malformed JSON
    b"[1, 2]",  # 2 not an object
    '{"id": "c", "response": "caf\u00e9"}'.encode("latin-1"),  # 3 not UTF-8
    b"   ",  # 4 blank line
    b'{"id": "d", "response": ""}',  # 5
    b'{"id": "e", "response": " \\n\\t "}',  # 6 whitespace only
    b'{"id": "f", "response": null}',  # 7
    b'{"id": "g", "model": "m2"}',  # 8 no text key
    b'{"id": "h", "response": 42}',  # 9
    b'{"id": "i", "response": ["x"]}',  # 10
    b'{"id": "j", "response": {"k": 1}}',  # 11
    b'{"id": "k", "response": true}',  # 12
    b'{"id": "a", "response": "second a"}',  # 13 duplicate id
    b'{"response": "no id", "model": "", "prompt": 7}',  # 14 good
    b'{"id": 5, "model": null, "response": "\\u4e2d\\u6587 ok"}',  # 15 good
]
JSONL = b"\n".join(JSONL_LINES) + b"\n\n  \n"  # trailing blank lines are not rows
JSONL_ERRORS = {
    1: "malformed JSON: Expecting ',' delimiter (column 34)",
    2: "malformed JSON: expected an object, found an array",
    3: BAD_ENCODING,
    4: BLANK_LINE,
    5: EMPTY_TEXT,
    6: EMPTY_TEXT,
    7: MISSING_TEXT,
    8: MISSING_TEXT,
    9: "non-string text (int)",
    10: "non-string text (list)",
    11: "non-string text (dict)",
    12: "non-string text (bool)",
    13: "duplicate id: a",
}


def test_jsonl_every_bad_row_kind_is_kept_with_its_reason():
    table = read_all(JSONL, "corpus.jsonl")
    rows = table.to_pylist()
    assert len(rows) == len(JSONL_LINES)  # good + bad = lines
    assert [r["position"] for r in rows] == list(range(len(JSONL_LINES)))
    assert errors(table) == JSONL_ERRORS
    good = [r for r in rows if r["error"] is None]
    assert [r["text"] for r in good] == ["good one", "no id", "中文 ok"]
    assert [r["row_id"] for r in good] == ["a", "corpus.jsonl:14", "5"]
    assert [r["model"] for r in good] == ["m1", UNKNOWN_MODEL, UNKNOWN_MODEL]
    assert [r["prompt"] for r in good] == ["p1", "7", None]
    assert all(r["raw"] is None for r in good)
    bad = {r["position"]: r for r in rows if r["error"]}
    assert all(r["text"] is None for r in bad.values())
    assert bad[1]["raw"] == JSONL_LINES[1].decode()
    assert bad[3]["raw"] == '{"id": "c", "response": "caf\ufffd"}'
    assert bad[3]["row_id"] == "corpus.jsonl:3"
    assert bad[9]["raw"] == "42" and bad[10]["raw"] == '["x"]'
    assert bad[13]["row_id"] == "corpus.jsonl:13" and bad[13]["raw"] == "second a"  # row ids stay unique
    assert len(set(table["row_id"].to_pylist())) == len(rows)


def test_jsonl_raw_is_cut_and_blank_file_gives_nothing():
    table = read_all(b'{"text": "ok"}\n{"text": "' + b"x" * 5000 + b"\n", "long.jsonl")
    assert errors(table) == {1: "malformed JSON: Unterminated string starting at (column 10)"}
    assert len(table["raw"][1].as_py()) == 1000
    assert read_all(b"", "empty.jsonl").num_rows == 0
    assert read_all(b"\n\n", "blank.jsonl").num_rows == 0


CSV = (
    b"id,model,prompt,text\r\n"
    b"1,m1,p,plain answer\r\n"
    b'2,m1,p,"two\r\nlines, with a comma and ""quotes"""\r\n'
    b"\r\n"
) + "3,m2,p,caf\u00e9 latin-1\r\n".encode("latin-1") + (
    "4,m2,short row\r\n"
    "5,,,\u4e2d\u6587\r\n"
    ",,,\r\n"
    "6,m1,p,   \r\n"
    "\r\n"
).encode()


def test_csv_multiline_encoding_short_and_blank_rows():
    table = read_all(CSV, "corpus.csv")
    rows = table.to_pylist()
    assert len(rows) == 8  # data rows: header and trailing blank line excluded
    assert errors(table) == {
        2: BLANK_ROW,
        3: BAD_ENCODING,
        4: "malformed CSV row: 3 fields, the header has 4",
        6: BLANK_ROW,
        7: EMPTY_TEXT,
    }
    assert rows[1]["text"] == 'two\r\nlines, with a comma and "quotes"'
    assert rows[3]["raw"] == "caf\ufffd latin-1" and rows[3]["row_id"] == "3"
    assert rows[4]["raw"] == "4,m2,short row"
    assert (rows[5]["model"], rows[5]["prompt"], rows[5]["text"]) == (UNKNOWN_MODEL, None, "中文")


def test_csv_with_bom_through_a_trickling_non_seekable_stream():
    data = b"\xef\xbb\xbf" + CSV
    assert read_all(data, "corpus.csv", stream=Trickle).equals(read_all(CSV, "corpus.csv"))
    assert read_all(JSONL, "c.jsonl", stream=Trickle).equals(read_all(JSONL, "c.jsonl"))


def test_pyarrow_input_stream_and_header_only_files(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(JSONL)
    with pafs.LocalFileSystem().open_input_stream(str(path)) as f:  # what Ray Data hands over
        assert read_all(f.read(), "c.jsonl").equals(read_all(JSONL, "c.jsonl"))
    with pafs.LocalFileSystem().open_input_stream(str(path)) as f:
        tables = list(read_stream(f, "c.jsonl", InputSpec()))
    assert pa.concat_tables(tables).equals(read_all(JSONL, "c.jsonl"))
    assert read_all(b"id,text\n", "h.csv").num_rows == 0
    assert read_all(b"", "e.csv").num_rows == 0
    with pytest.raises(InputError, match="no text column"):
        read_all(b"id,answer\n", "h.csv")


def test_chunk_rows_splits_into_several_tables_with_the_same_rows():
    tables = list(read_stream(io.BytesIO(JSONL), "c.jsonl", InputSpec(), chunk_rows=3))
    assert [t.num_rows for t in tables] == [3, 3, 3, 3, 3, 1]
    assert pa.concat_tables(tables).equals(read_all(JSONL, "c.jsonl"))


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=2)
    return sink.getvalue()


def test_parquet_round_trip():
    source = pa.table({
        "id": ["a", "b", None, "d", "e"],
        "model": ["m1", None, "m2", "m2", ""],
        "prompt": ["p", None, "q", "r", "s"],
        "text": ["one", "two", None, " ", "five"],
        "extra": [1, 2, 3, 4, 5],
    })
    table = read_all(parquet_bytes(source), "c.parquet", chunk_rows=2, stream=Trickle)
    assert table.num_rows == 5
    assert errors(table) == {2: MISSING_TEXT, 3: EMPTY_TEXT}
    assert table["text"].to_pylist() == ["one", "two", None, None, "five"]
    assert table["row_id"].to_pylist() == ["a", "b", "c.parquet:2", "d", "e"]
    assert table["model"].to_pylist() == ["m1", UNKNOWN_MODEL, "m2", "m2", UNKNOWN_MODEL]
    numbers = read_all(parquet_bytes(pa.table({"text": [1, 2]})), "n.parquet")
    assert errors(numbers) == {0: "non-string text (int)", 1: "non-string text (int)"}


def xlsx_bytes(sheets: dict[str, list[tuple]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    sink = io.BytesIO()
    book.save(sink)
    return sink.getvalue()


def test_xlsx_long_format_and_sheet_choice():
    rows = [("response", "model", "note"), ("good", "m1", "x"), (None, "m1", "x"), (3.5, None, None),
            (None, None, None), ("  ", "m2", None), ("last", "m2", None), (None, None, None)]
    data = xlsx_bytes({"notes": [("nothing", "here")], "answers": rows})
    table = read_all(data, "c.xlsx", InputSpec(sheet="answers"), stream=Trickle)
    assert table.num_rows == 6  # the trailing blank row is not a row
    assert errors(table) == {1: MISSING_TEXT, 2: "non-string text (float)", 3: BLANK_ROW, 4: EMPTY_TEXT}
    assert table["text"].to_pylist() == ["good", None, None, None, None, "last"]
    assert table["model"].to_pylist() == ["m1", "m1", UNKNOWN_MODEL, UNKNOWN_MODEL, "m2", "m2"]
    with pytest.raises(InputError, match=r"no text column 'response' or 'text'.*'nothing', 'here'"):
        read_all(data, "c.xlsx")  # the first sheet
    with pytest.raises(InputError, match=r"no sheet 'answer'.*'notes', 'answers'"):
        read_all(data, "c.xlsx", InputSpec(sheet="answer"))


def test_missing_text_column_names_file_and_columns():
    columns = r"\['id', 'model', 'prompt', 'text'\]"
    with pytest.raises(InputError, match=r"c\.csv: no text column 'body'.*" + columns):
        read_all(CSV, "c.csv", InputSpec(text_column="body"))
    with pytest.raises(InputError, match=r"c\.jsonl: no text column 'response' or 'text'.*'id', 'answer'"):
        read_all(b'{"id": 1, "answer": "x"}\n', "c.jsonl")
    with pytest.raises(InputError, match=r"c\.parquet: no text column"):
        read_all(parquet_bytes(pa.table({"answer": ["x"]})), "c.parquet")


def test_text_column_auto_choice():
    both = b'{"response": "R", "text": "T"}\n{"text": "only T"}\n'
    assert read_all(both, "c.jsonl")["text"].to_pylist() == ["R", None]
    assert errors(read_all(both, "c.jsonl")) == {1: MISSING_TEXT}
    assert read_all(both, "c.jsonl", InputSpec(text_column="text"))["text"].to_pylist() == ["T", "only T"]
    assert read_all(b"text,response\nT,R\n", "c.csv")["text"].to_pylist() == ["R"]
    assert read_all(b"id,text\n1,T\n", "c.csv")["text"].to_pylist() == ["T"]


WIDE_CSV = (
    b"quest,gpt4,,llama2\n"  # an unnamed column is not an LLM
    b"Q1 ,a1,x,b1\n"
    b"Q2,,x,b2\n"
    b" ,stray,,\n"
    b"Q3,a3,x,b3,extra\n"
    b"Q4,a4,x,b4\n"
)


def test_wide_csv_reshapes_to_long():
    table = read_all(WIDE_CSV, "w.csv", InputSpec(wide=True, default_model="ignored"))
    rows = table.to_pylist()
    assert [r["position"] for r in rows] == list(range(10))  # 5 rows x 2 LLMs
    assert [r["model"] for r in rows] == ["gpt4", "llama2"] * 5
    assert rows[0] | {"raw": None} == {
        "row_id": "w.csv:0:gpt4", "source": "w.csv", "position": 0, "model": "gpt4", "prompt": "Q1",
        "text": "a1", "error": None, "raw": None,
    }
    assert errors(table) == {
        2: EMPTY_TEXT,
        4: NO_QUESTION, 5: NO_QUESTION,
        **dict.fromkeys([6, 7], "malformed CSV row: 5 fields, the header has 4"),
    }
    assert rows[4]["raw"] == "stray" and rows[9]["row_id"] == "w.csv:4:llama2"
    by_question = read_all(WIDE_CSV, "w.csv", InputSpec(wide=True, question_column="llama2"))
    assert by_question["model"].to_pylist()[:2] == ["quest", "gpt4"]
    with pytest.raises(InputError, match="one answer column per LLM"):
        read_all(b"quest\nQ1\n", "w.csv", InputSpec(wide=True))
    with pytest.raises(InputError, match="no question column 'nope'"):
        read_all(WIDE_CSV, "w.csv", InputSpec(wide=True, question_column="nope"))
    with pytest.raises(InputError, match=r"LLM columns \['gpt4'\] appear more than once"):
        read_all(b"q,gpt4,gpt4\nQ1,a,b\n", "w.csv", InputSpec(wide=True))


def test_quest100_wide(shared_data: Path):
    path = str(shared_data / "quest100.xlsx")
    with open(path, "rb") as f:
        table = pa.concat_tables(read_stream(f, path, InputSpec(wide=True)))
    rows = table.to_pylist()
    assert len(rows) == 103 * 6  # 103 data rows (100 questions + 3 stray rows) x 6 LLMs
    assert [r["model"] for r in rows[:6]] == QUEST100_MODELS
    good = {m: sum(r["model"] == m and r["error"] is None for r in rows) for m in QUEST100_MODELS}
    assert good == dict.fromkeys(QUEST100_MODELS[:4], 89) | {"gpt4": 100, "llama2": 100}
    reasons = [r["error"] for r in rows if r["error"]]
    assert len(reasons) == 62 and reasons.count(MISSING_TEXT) == 44 and reasons.count(NO_QUESTION) == 18
    assert {r["position"] for r in rows if r["error"] == NO_QUESTION} == set(range(600, 618))
    assert rows[0]["prompt"].startswith("1.") and rows[0]["row_id"] == f"{path}:0:chatglm3-6b"


def test_unknown_suffix_is_an_input_error_naming_the_file_and_the_formats():
    with pytest.raises(InputError, match=r"notes\.txt: unknown file suffix '\.txt'; supported: \.csv"):
        list(read_stream(io.BytesIO(b"text\nhi\n"), "notes.txt", InputSpec()))


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    for name in ("a.jsonl", "sub/b.csv", "sub/deep/c.xlsx", "d.parquet", "notes.txt", ".hidden/e.jsonl",
                 "sub/~$c.xlsx", "sub/f.jsonl", "docs/readme.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_expand_inputs_folder_glob_and_file(corpus_dir: Path):
    root = str(corpus_dir)
    names = ("a.jsonl", "d.parquet", "sub/b.csv", "sub/deep/c.xlsx", "sub/f.jsonl")
    everything = [f"{root}/{n}" for n in names]
    assert expand_inputs([root]) == everything
    assert expand_inputs([f"{root}/**/*.jsonl", f"{root}/a.jsonl"]) == [everything[0], everything[4]]
    assert expand_inputs([f"{root}/sub/?.csv"]) == [everything[2]]
    assert expand_inputs([f"{root}/*"]) == everything[:2]  # `*` stays within one folder
    hidden = [f"{root}/.hidden/e.jsonl"]  # hidden entries are skipped inside a folder, not when named
    assert expand_inputs([f"{root}/.hidden"]) == expand_inputs([f"{root}/.hidden/*.jsonl"]) == hidden


def test_expand_inputs_file_uris(corpus_dir: Path):
    uri = corpus_dir.as_uri()
    assert expand_inputs([uri]) == [f"{uri}/{n}" for n in ("a.jsonl", "d.parquet", "sub/b.csv",
                                                           "sub/deep/c.xlsx", "sub/f.jsonl")]
    assert expand_inputs([f"{uri}/**/*.jsonl"]) == [f"{uri}/a.jsonl", f"{uri}/sub/f.jsonl"]
    assert expand_inputs([f"{uri}/sub/b.csv"]) == [f"{uri}/sub/b.csv"]


def test_expand_inputs_errors_name_the_spec(corpus_dir: Path):
    root = str(corpus_dir)
    for spec, message in [
        (f"{root}/missing.jsonl", "does not exist"),
        (f"{root}/**/*.tsv", "glob .* matches no"),
        (f"{root}/docs", "folder .* holds no"),
        (f"{corpus_dir.as_uri()}/*.csv", "glob .* matches no"),
        (f"{corpus_dir.as_uri()}/nope", "does not exist"),
    ]:
        with pytest.raises(InputError, match=message) as e:
            expand_inputs([spec])
        assert spec in str(e.value)
    with pytest.raises(InputError, match="unknown file suffix '.txt'"):
        expand_inputs([f"{root}/notes.txt"])
