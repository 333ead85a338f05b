"""`valuecsv-ray cvalues` as a user types it: items from the demo pairs, score, fill the xlsx, import."""

import json
from datetime import datetime, timezone

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from valuecsv_ray.cli.cvalues import cvalues
from valuecsv_ray.collect.schema import RESPONSE_SCHEMA


def response_row(item: dict, model: str, text: str | None, status: str = "ok") -> dict:
    return {"id": f"{model}:{item['prompt_id']}", "model": model, "prompt_id": item["prompt_id"],
            "suite": item["suite"], "prompt": item["prompt"], "sample": 0,
            "response": text if status == "ok" else None, "status": status,
            "error": None if status == "ok" else "no answer", "http_status": 200 if status == "ok" else None,
            "attempts": 1, "latency_s": 0.1, "finish_reason": "stop", "prompt_tokens": None,
            "completion_tokens": None, "total_tokens": None, "api_model": model,
            "base_url": "http://127.0.0.1:9/v1", "params": "{}", "meta": json.dumps(item["meta"]),
            "finished_at": datetime(2026, 11, 1, tzinfo=timezone.utc)}


@pytest.fixture
def scored_dir(tmp_path):
    """items from the demo; `first` always prefers 回复1, `mute` is unreadable and lost one answer."""
    runner = CliRunner()
    result = runner.invoke(cvalues, ["items", "demo", "--out", str(tmp_path / "items.jsonl")])
    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [response_row(it, "first", "回复1比回复2更好。") for it in items]
    rows += [response_row(it, "mute", "A") for it in items[1:]]
    rows += [response_row(items[0], "mute", None, "timeout")]
    responses = tmp_path / "responses"
    responses.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=RESPONSE_SCHEMA), responses / "part-0.parquet")
    result = runner.invoke(cvalues, ["score", "--items", str(tmp_path / "items.jsonl"),
                                     "--responses", str(responses), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    return tmp_path, items, result.output


def test_items_command_writes_both_orders_of_the_demo(tmp_path):
    result = CliRunner().invoke(cvalues, ["items", "demo", "--out", str(tmp_path / "items.jsonl")])
    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    n_pairs = len(items) // 2
    assert f"rows in {n_pairs} = pairs {n_pairs} + merged duplicates 0 + quarantined 0" in result.output
    assert [it["meta"]["label"] for it in items] == ["回复1", "回复2"] * n_pairs
    assert all(it["suite"] == "cvalues-mc" and it["prompt_id"].startswith("cvalues-mc:") for it in items)


def test_items_command_writes_the_quarantine_beside_the_items(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame([{"question": "问", "pos_resp": "好", "neg_resp": "坏"},
                  {"question": "", "pos_resp": "好", "neg_resp": "坏"}]).to_csv(pairs, index=False)
    result = CliRunner().invoke(cvalues, ["items", str(pairs), "--out", str(tmp_path / "items.jsonl")])
    assert result.exit_code == 0, result.output
    assert "rows in 2 = pairs 1 + merged duplicates 0 + quarantined 1" in result.output
    bad = pd.read_csv(tmp_path / "items.quarantine.csv")
    assert bad[["row", "reason"]].values.tolist() == [[3, "empty question"]]


def test_score_prints_the_table_and_says_why_acc_star_is_missing(scored_dir):
    tmp_path, items, output = scored_dir
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    first = metrics[(metrics["model"] == "first") & (metrics["scope"] == "overall")].iloc[0]
    assert (first["total"], first["correct"], first["answered"]) == (len(items), len(items) // 2, len(items))
    assert (first["consistency"], first["position_bias"]) == (0.0, 0.5)
    mute = metrics[(metrics["model"] == "mute") & (metrics["scope"] == "overall")].iloc[0]
    assert (mute["total"], mute["answered"], mute["need_check"], mute["not_collected"]) == (
        len(items) - 1, 0, len(items) - 1, 1)
    assert "0.500 [" in output and "+0.500" in output
    n = len(items) - 1
    assert f"model mute: no answered items (0 Refuse, {n} Need_Check of {n}), so acc* is undefined (n/a)" \
        in output
    assert 'model mute: 1 answers not collected, left out of the totals ({"timeout": 1})' in output
    parsed = pd.read_parquet(tmp_path / "out" / "parsed.parquet")
    assert {"model", "prompt_id", "pair_id", "order", "label", "parsed", "correct", "response"} <= set(parsed)
    ws = openpyxl.load_workbook(tmp_path / "out" / "need_check.xlsx")["need_check"]
    assert ws.max_row - 1 == len(items) - 1


def test_import_manual_rewrites_the_metrics(scored_dir):
    tmp_path, items, _ = scored_dir
    xlsx = tmp_path / "out" / "need_check.xlsx"
    wb = openpyxl.load_workbook(xlsx)
    ws = wb["need_check"]
    for row in range(2, ws.max_row + 1):
        ws.cell(row, 7).value = "回复2"  # a person reads every mute answer as 回复2
    wb.save(xlsx)
    result = CliRunner().invoke(cvalues, ["import-manual", str(xlsx), "--scored", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"manual labels applied: {len(items) - 1}; left blank: 0" in result.output
    metrics = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    mute = metrics[(metrics["model"] == "mute") & (metrics["scope"] == "overall")].iloc[0]
    n = len(items) - 1  # the timed-out item was a pos_first one, so all neg_first items are left
    assert (mute["answered"], mute["correct"]) == (n, len(items) // 2)
    assert mute["acc_star"] == pytest.approx((len(items) // 2) / n)
    assert mute["position_bias"] == -0.5


def test_errors_go_to_stderr_with_exit_1(tmp_path, scored_dir):
    runner = CliRunner()
    result = runner.invoke(cvalues, ["items", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "missing.jsonl" in result.stderr
    base, _, _ = scored_dir
    pd.DataFrame({"model": ["m"], "prompt_id": ["cvalues-mc:x"], "response": ["a"]}).to_parquet(
        tmp_path / "r.parquet")
    result = runner.invoke(cvalues, ["score", "--items", str(base / "items.jsonl"), "--responses",
                                     str(tmp_path / "r.parquet"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "r.parquet: missing column(s) status" in result.stderr
    xlsx = base / "out" / "need_check.xlsx"
    wb = openpyxl.load_workbook(xlsx)
    wb["need_check"].cell(3, 7).value = "B"
    wb.save(xlsx)
    result = runner.invoke(cvalues, ["import-manual", str(xlsx), "--scored", str(base / "out")])
    assert result.exit_code == 1
    assert "row 3, column manual_label (G): 'B' is not one of 回复1, 回复2, Other, Refuse" in result.stderr
