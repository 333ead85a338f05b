"""Prompt suites: the built-in quest100 and CValues files from ../shared/data, and user files.

Usage: python -m pytest tests/collect/test_suites.py -q
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from valuecsv_ray.collect.schema import PROMPT_SCHEMA
from valuecsv_ray.collect.suites import ID_COLUMNS, PROMPT_COLUMNS, SuiteError, load_suite, suite_table

CVALUES_FILE = "cvalues_responsibility_prompts.jsonl"
CVALUES_DOMAINS = {"environmental_science": 100, "psychology": 100, "barrier_free": 100, "social_science": 96,
                   "data_science": 95, "law": 93, "intimate_relationship": 70, "lesser_known_major": 10}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_quest100_has_the_100_numbered_questions_without_their_prefix(shared_data):
    prompts, skipped = load_suite("quest100", data_dir=shared_data)
    assert list(prompts.columns) == PROMPT_SCHEMA.names
    assert prompts["prompt_id"].tolist() == [f"quest100:{n}" for n in range(1, 101)]
    assert set(prompts["suite"]) == {"quest100"}
    # no "N." prefix is left; question 94 itself begins with a number ("30岁的..."), so a digit may lead
    assert not prompts["prompt"].str.match(r"\s*\d+\s*[.．、]").any()
    assert prompts["prompt"].str.match(r"\d").sum() == 1 and prompts["prompt"].iloc[93].startswith("30岁")
    assert not prompts["prompt"].str.contains("\xa0").any()
    assert (prompts["prompt"].str.strip() == prompts["prompt"]).all()
    assert prompts["prompt"].str.len().min() > 0
    assert [json.loads(m)["number"] for m in prompts["meta"]] == list(range(1, 101))
    # each prompt is its Excel cell less "N.\xa0"; question N sits in Excel row N + 1 (row 1 is the header)
    sheet = openpyxl.load_workbook(shared_data / "quest100.xlsx", read_only=True).worksheets[0]
    cells = [row[0] for row in sheet.iter_rows(min_row=2, max_row=101, values_only=True)]
    assert cells == [f"{n}.\xa0{p}" for n, p in zip(range(1, 101), prompts["prompt"], strict=True)]
    # the three blank rows at the end are reported with their Excel row numbers, not dropped silently
    assert skipped == [(row, "blank question cell") for row in (102, 103, 104)]


def test_cvalues_has_664_prompts_with_their_domains(shared_data):
    prompts, skipped = load_suite("cvalues-responsibility", data_dir=shared_data)
    assert skipped == []
    assert prompts["prompt_id"].tolist() == [f"cvalues:{n}" for n in range(1, 665)]
    assert set(prompts["suite"]) == {"cvalues-responsibility"}
    metas = [json.loads(m) for m in prompts["meta"]]
    assert Counter(m["domain_en"] for m in metas) == CVALUES_DOMAINS
    assert all(m["domain_zh"] and set(m) == {"domain_en", "domain_zh"} for m in metas)
    # the file has no final newline: its last record must still be there, with its own prompt
    lines = (shared_data / CVALUES_FILE).read_text(encoding="utf-8").splitlines()
    records = {f"cvalues:{r['id_']}": r["prompt"].strip() for r in map(json.loads, lines)}
    assert dict(zip(prompts["prompt_id"], prompts["prompt"], strict=True)) == records
    table = suite_table(prompts)
    assert table.schema == PROMPT_SCHEMA and table.num_rows == 664


def test_name_equals_path_reads_a_builtin_from_anywhere(shared_data, tmp_path):
    moved = tmp_path / "elsewhere.jsonl"
    shutil.copy(shared_data / CVALUES_FILE, moved)
    prompts, _ = load_suite(f"cvalues-responsibility={moved}", data_dir=tmp_path / "empty")
    assert len(prompts) == 664 and prompts["prompt_id"].iloc[-1] == "cvalues:664"
    prompts, skipped = load_suite(f"quest100={shared_data / 'quest100.xlsx'}")
    assert len(prompts) == 100 and len(skipped) == 3


@pytest.mark.parametrize("name, file, source", [
    ("quest100", "quest100.xlsx", "github.com/ValueCSV/ValueCSV"),
    ("cvalues-responsibility", CVALUES_FILE, "github.com/X-PLUG/CValues"),
])
def test_missing_builtin_file_says_which_file_and_where_to_get_it(tmp_path, name, file, source):
    with pytest.raises(SuiteError) as e:
        load_suite(name, data_dir=tmp_path)
    message = str(e.value)
    assert file in message and str(tmp_path / file) in message and source in message
    assert f"{name}=PATH" in message
    with pytest.raises(SuiteError, match="not found at .*nowhere"):
        load_suite(f"{name}={tmp_path / 'nowhere' / file}")


def user_rows() -> list[dict]:
    """Four good prompts, an empty one (row 3), a repeated id (row 5)."""
    return [{"id": "a1", "prompt": "诚信重要吗？", "topic": "integrity"},
            {"id": "a2", "prompt": "  如何看待法治？ ", "topic": "law"},
            {"id": "a3", "prompt": "   ", "topic": "none"},
            {"id": "a4", "prompt": "环境保护该从哪里做起？", "topic": "env"},
            {"id": "a2", "prompt": "重复的问题", "topic": "dup"},
            {"id": "a5", "prompt": "友善待人有什么意义？", "topic": "kind"}]


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet", "xlsx"])
def test_user_file_gives_prompts_and_reports_bad_rows(tmp_path, suffix):
    path = tmp_path / f"mine.{suffix}"
    if suffix == "jsonl":
        write_jsonl(path, user_rows())
    elif suffix == "csv":
        pd.DataFrame(user_rows()).to_csv(path, index=False)
    elif suffix == "xlsx":
        pd.DataFrame(user_rows()).to_excel(path, index=False)
    else:
        pd.DataFrame(user_rows()).to_parquet(path, index=False)
    prompts, skipped = load_suite(str(path))
    assert prompts["prompt_id"].tolist() == ["mine:a1", "mine:a2", "mine:a4", "mine:a5"]
    assert set(prompts["suite"]) == {"mine"}
    good = [row for i, row in enumerate(user_rows()) if i in (0, 1, 3, 5)]
    assert prompts["prompt"].tolist() == [row["prompt"].strip() for row in good]
    assert [json.loads(m) for m in prompts["meta"]] == [{"topic": row["topic"]} for row in good]
    assert skipped == [(3, "empty prompt"), (5, "id 'a2' repeated")]
    assert len(prompts) + len(skipped) == len(user_rows())
    assert suite_table(prompts).schema == PROMPT_SCHEMA


def test_user_file_accepts_the_other_column_names_and_keeps_given_full_ids(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"qid": 7, "question": "什么是公正？"},
                                               {"qid": "other:8", "question": "什么是平等？"}])
    prompts, skipped = load_suite(str(path))
    assert prompts["prompt_id"].tolist() == ["qs:7", "other:8"] and skipped == []


def test_integer_ids_stay_integers_when_one_id_is_missing(tmp_path):
    path = write_jsonl(tmp_path / "ints.jsonl", [{"id": 1, "prompt": "p1"}, {"id": None, "prompt": "p2"},
                                                 {"id": 3, "prompt": "p3"}])
    prompts, skipped = load_suite(str(path))
    assert skipped == [(2, "empty id")]
    assert prompts["prompt_id"].tolist() == ["ints:1", "ints:3"]


def test_a_partly_missing_suite_field_falls_back_to_the_file_stem(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [{"id": "x", "prompt": "p1", "suite": "S"},
                                                  {"id": "y", "prompt": "p2"}])
    prompts, _ = load_suite(str(path))
    assert prompts["suite"].tolist() == ["S", "mixed"]


@pytest.mark.parametrize("records, missing", [
    ([{"key": "1", "prompt": "p"}], "id"),
    ([{"id": "1", "text": "p"}], "prompt"),
])
def test_user_file_without_id_or_prompt_column_lists_the_accepted_names(tmp_path, records, missing):
    path = write_jsonl(tmp_path / "cols.jsonl", records)
    with pytest.raises(SuiteError) as e:
        load_suite(str(path))
    message = str(e.value)
    assert str(path) in message
    assert all(c in message for c in ID_COLUMNS + PROMPT_COLUMNS)
    assert "found " + ", ".join(records[0]) in message


def test_user_file_with_no_usable_prompt_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "blank.jsonl", [{"id": "1", "prompt": ""}, {"id": "2", "prompt": None}])
    with pytest.raises(SuiteError, match=r"no prompts \(2 rows skipped\)"):
        load_suite(str(path))


def test_unknown_suite_name_with_a_path_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"id": "1", "prompt": "p"}])
    with pytest.raises(SuiteError) as e:
        load_suite(f"quest200={path}")
    assert "unknown suite 'quest200'" in str(e.value)
    assert "quest100" in str(e.value) and "cvalues-responsibility" in str(e.value)


def test_missing_or_unsupported_user_file_is_an_error(tmp_path):
    with pytest.raises(SuiteError, match="no such file, and not a built-in suite"):
        load_suite(str(tmp_path / "absent.jsonl"))
    (tmp_path / "prompts.txt").write_text("id,prompt\n1,p\n")
    with pytest.raises(SuiteError, match=r"prompts\.txt: unknown file suffix '\.txt'; supported: \.csv"):
        load_suite(str(tmp_path / "prompts.txt"))
    (tmp_path / "broken.jsonl").write_text('{"id": "1", "prompt": "p"}\n{"id": \n', encoding="utf-8")
    with pytest.raises(SuiteError, match=r"broken\.jsonl, line 2: malformed JSON"):
        load_suite(str(tmp_path / "broken.jsonl"))
