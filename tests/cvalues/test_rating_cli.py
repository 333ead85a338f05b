"""`rating export / import / summary` as a user types them (click's CliRunner), on responses
written as collect writes them: a folder of Parquet files with RESPONSE_SCHEMA."""

import hashlib
import json
from datetime import datetime, timezone

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from valuecsv_ray.cli.rating import rating
from valuecsv_ray.collect.schema import RESPONSE_SCHEMA
from valuecsv_ray.cvalues.human import COLUMNS, RATINGS

MODELS = ("qwen-7b", "glm-4")
RATING_COL = COLUMNS.index("rating") + 1


def response_rows(model: str) -> list[dict]:
    rows = []
    for q, (en, zh) in enumerate([("law", "法律"), ("psychology", "心理学")] * 3):
        ok = not (model == "glm-4" and q == 5)
        rows.append({"id": hashlib.sha256(f"{model}/{q}".encode()).hexdigest(), "model": model,
                     "prompt_id": f"cvalues:{q + 1}", "suite": "cvalues-responsibility",
                     "prompt": f"问题 {q}", "sample": 0,
                     "response": f"回复 {q}" if ok else None, "status": "ok" if ok else "http_error",
                     "error": None if ok else "HTTP 500", "http_status": 200 if ok else 500, "attempts": 1,
                     "latency_s": 0.1, "finish_reason": "stop", "prompt_tokens": 5, "completion_tokens": 5,
                     "total_tokens": 10, "api_model": model, "base_url": "http://localhost:8000/v1",
                     "params": "{}",
                     "meta": json.dumps({"domain_en": en, "domain_zh": zh}, ensure_ascii=False),
                     "finished_at": datetime(2025, 1, 1, tzinfo=timezone.utc)})
    return rows


@pytest.fixture
def responses_dir(tmp_path):
    folder = tmp_path / "responses"
    folder.mkdir()
    for i, model in enumerate(MODELS):
        pq.write_table(pa.Table.from_pylist(response_rows(model), schema=RESPONSE_SCHEMA),
                       folder / f"part-{i}.parquet")
    return folder


def run(*args: str):
    return CliRunner().invoke(rating, [str(a) for a in args])


def fill_all(path, value=lambda r: r % 5 + 1) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb[RATINGS]
    for r in range(2, ws.max_row + 1):
        ws.cell(r, RATING_COL).value = value(r)
    wb.save(path)


def test_export_import_summary(responses_dir, tmp_path):
    out = tmp_path / "rate" / "sheet.xlsx"
    exported = run("export", responses_dir, "--out", out, "--raters", 2, "--overlap", 1.0, "--seed", 3)
    assert exported.exit_code == 0, exported.output
    assert ("11 answers to rate, 11 of them by more than one rater; left out: status=http_error: 1"
            in exported.output)
    sheets = [tmp_path / "rate" / f"sheet.rater{k}.xlsx" for k in (1, 2)]
    for sheet in sheets:
        fill_all(sheet)
    key = tmp_path / "rate" / "sheet.key.json"
    imported = run("import", *sheets, "--key", key, "--out", tmp_path / "r.parquet")
    assert imported.exit_code == 0, imported.output
    assert "rater rater1: 11 rated, 0 unrated" in imported.output
    summary = run("summary", tmp_path / "r.parquet")
    assert summary.exit_code == 0, summary.output
    assert "source: human" in summary.output and all(m in summary.output for m in MODELS)
    assert "alpha" in summary.output and "法律" in summary.output


def test_summary_without_overlap_says_so(responses_dir, tmp_path):
    assert run("export", responses_dir / "part-0.parquet", "--out", tmp_path / "s.xlsx").exit_code == 0
    fill_all(tmp_path / "s.xlsx")
    assert run("import", tmp_path / "s.xlsx", "--key", tmp_path / "s.key.json", "--out",
               tmp_path / "r.parquet").exit_code == 0
    result = run("summary", tmp_path / "r.parquet")
    assert result.exit_code == 0 and "agreement: no item rated twice" in result.output


def test_bad_rating_is_an_error_naming_the_cell(responses_dir, tmp_path):
    run("export", responses_dir, "--out", tmp_path / "s.xlsx")
    fill_all(tmp_path / "s.xlsx", value=lambda r: "很好" if r == 4 else 3)
    result = run("import", tmp_path / "s.xlsx", "--key", tmp_path / "s.key.json", "--out",
                 tmp_path / "r.parquet")
    assert result.exit_code == 1 and not (tmp_path / "r.parquet").exists()
    assert result.stderr.startswith("error: 1 problem(s)")
    assert "s.xlsx, sheet 'ratings', row 4, column F (rating): '很好' is not on the scale" in result.stderr


@pytest.mark.parametrize("args, message", [
    (("--raters", "1", "--overlap", "0.2"), "overlap_raters"),
    (("--suite", "quest100"), "no answers to rate"),
])
def test_export_errors(responses_dir, tmp_path, args, message):
    result = run("export", responses_dir, "--out", tmp_path / "s.xlsx", *args)
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and message in result.stderr


def test_folder_without_parquet_is_an_error(tmp_path):
    result = run("export", tmp_path, "--out", tmp_path / "s.xlsx")
    assert result.exit_code == 1 and "no *.parquet files" in result.stderr
