"""`valuecsv-ray eval` end to end on quest100 against the stub LLM server: collect -> audit ->
statistics -> leaderboard -> report, as a user types it; failed answers are quarantined, not scored."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from valuecsv_ray.cli import main
from valuecsv_ray.collect.suites import load_suite
from valuecsv_ray.testing.llm_stub import StubLLM

pytestmark = pytest.mark.ray


def test_eval_on_quest100_writes_leaderboard_and_report(
    ray_local, tiny_registry, shared_data, tmp_path, monkeypatch
):
    prompts, _ = load_suite("quest100", shared_data)
    broken = {prompts["prompt"][3]: ["400"], prompts["prompt"][7]: ["null"] * 4}  # per model, all attempts
    monkeypatch.setenv("EVAL_STUB_KEY", "sk-stub")
    with StubLLM(latency_s=0.01, faults=broken) as stub:
        endpoints = [
            {
                "name": n,
                "base_url": stub.base_url,
                "model": m,
                "api_key_env": "EVAL_STUB_KEY",
                "max_in_flight": 8,
            }
            for n, m in (("model-a", "stub-a"), ("model-b", "stub-b"))
        ]
        (tmp_path / "endpoints.yaml").write_text(yaml.safe_dump({"endpoints": endpoints}))
        args = [
            "eval",
            "--suite",
            "quest100",
            "--data-dir",
            str(shared_data),
            "--endpoints",
            str(tmp_path / "endpoints.yaml"),
            "--registry",
            str(tiny_registry),
            "--out",
            str(tmp_path / "ev"),
            "--profile",
            "uniform",
            "--profile",
            "personal",
            "--n-boot",
            "200",
        ]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        again = CliRunner().invoke(main, args)  # resumes: nothing asked or scored twice
        assert again.exit_code == 0, again.output
        assert len(stub.requests()) == 2 * 100  # 400 is permanent, null is not retried: one request each
    out = tmp_path / "ev"
    assert "profile uniform" in result.output and "profile personal" in result.output
    responses = pq.read_table(out / "collect" / "responses").to_pandas()
    assert len(responses) == 200 and responses["id"].is_unique
    quarantine = pq.read_table(out / "audit" / "quarantine").to_pandas()
    assert len(quarantine) == 4 and quarantine["reason"].str.startswith("response status ").all()
    assert set(quarantine["reason"].str.split(":").str[0]) == {
        "response status http_error",
        "response status empty",
    }
    summary = json.loads((out / "audit" / "summary.json").read_text())
    assert summary["rows_in"] == 200 and summary["rows_scored"] == 196 and summary["duplicates"] == 0
    board = pd.read_parquet(out / "leaderboard" / "leaderboard.parquet")
    assert set(board["profile"]) == {"uniform", "personal"} and set(board["model"]) == {"model-a", "model-b"}
    assert sorted(board.loc[board["profile"] == "uniform", "rank"]) == [1, 2]
    assert (board["n_prompts"] == board["n_prompts"].iloc[0]).all() and board["n_prompts"].iloc[0] <= 98
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert "Leaderboard" in report and (out / "report" / "ranks.png").stat().st_size > 1000


def test_eval_into_object_storage_writes_every_step_there(
    ray_local, tiny_registry, s3, tmp_path, monkeypatch
):
    """`--out s3://...`: the answers, the audit, the leaderboard and the report all land on the store."""
    import pyarrow.fs as pafs

    monkeypatch.setenv("EVAL_STUB_KEY", "sk-stub")
    suite = tmp_path / "mini.jsonl"
    suite.write_text(
        "".join(
            json.dumps({"id": i, "prompt": f"第{i}题：谈谈公平与诚信。"}, ensure_ascii=False) + "\n"
            for i in range(12)
        ),
        encoding="utf-8",
    )
    s3.create_dir("evals")
    with StubLLM() as stub:
        endpoints = [
            {"name": n, "base_url": stub.base_url, "model": m, "api_key_env": "EVAL_STUB_KEY"}
            for n, m in (("model-a", "stub-a"), ("model-b", "stub-b"))
        ]
        (tmp_path / "endpoints.yaml").write_text(yaml.safe_dump({"endpoints": endpoints}))
        args = [
            "eval",
            "--suite",
            str(suite),
            "--endpoints",
            str(tmp_path / "endpoints.yaml"),
            "--registry",
            str(tiny_registry),
            "--out",
            "s3://evals/run1",
            "--n-boot",
            "100",
        ]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    infos = s3.get_file_info(pafs.FileSelector("evals/run1", recursive=True))
    names = {i.path.removeprefix("evals/run1/") for i in infos if i.type == pafs.FileType.File}
    assert {
        "collect/summary.json",
        "audit/summary.json",
        "audit/stats/stats.parquet",
        "leaderboard/leaderboard.parquet",
        "report/report.html",
        "report/ranks.png",
    } <= names
    board = pd.read_parquet("evals/run1/leaderboard/leaderboard.parquet", filesystem=s3)
    assert set(board["model"]) == {"model-a", "model-b"} and (board["n_prompts"] == 12).all()
    responses = pd.read_parquet("evals/run1/collect/responses", filesystem=s3)
    assert len(responses) == 24 and (responses["status"] == "ok").all()
