"""An audit whose registry and --out are on object storage (a local moto S3), through the CLI:
scores, quarantine, summary, stats and report land there; an interrupted run resumes; the outputs
read back with pandas and DuckDB."""

from __future__ import annotations

import json
import shutil

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from click.testing import CliRunner

from valuecsv_ray.cli import main
from valuecsv_ray.registry.store import publish_registry

pytestmark = pytest.mark.ray


def _files(s3, folder: str) -> list[str]:
    infos = s3.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def _audit(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_audit_with_registry_and_out_on_s3_resumes_and_reads_back(
    ray_local, tiny_registry, s3, tmp_path, monkeypatch
):
    monkeypatch.setenv("VALUECSV_CACHE", str(tmp_path / "cache"))
    s3.create_dir("cluster")
    publish_registry(tiny_registry, "s3://cluster/runs/tiny12")
    rows = [
        {
            "id": f"r{i}",
            "model": f"m{i % 2}",
            "prompt": f"q{i // 2}",
            "response": f"第{i}段：人人平等，诚实守信。",
        }
        for i in range(40)
    ] + [{"id": "bad", "model": "m0", "prompt": "q0", "response": ""}]
    corpus = tmp_path / "answers.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = "s3://cluster/audit/run1"
    args = ["audit", str(corpus), "--registry", "s3://cluster/runs/tiny12", "--out", out, "--batch-size", "8"]
    _audit(args)
    written = _files(s3, "cluster/audit/run1")
    assert (
        "cluster/audit/run1/summary.json" in written and "cluster/audit/run1/stats/stats.parquet" in written
    )
    scores_files = [f for f in written if f.startswith("cluster/audit/run1/scores/")]
    assert scores_files and not any(f.endswith(".tmp") for f in written)

    # interrupted: a scores file and the summary lost (as if the run died while writing); resume
    s3.delete_file(scores_files[0])
    s3.delete_file("cluster/audit/run1/summary.json")
    _audit(args)
    with s3.open_input_stream("cluster/audit/run1/summary.json") as f:
        summary = json.loads(f.read())
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_quarantined"]) == (41, 40, 1)
    assert summary["duplicates"] == 0

    scores = pd.read_parquet("cluster/audit/run1/scores", filesystem=s3)
    assert len(scores) == 40 and scores["row_id"].is_unique
    quarantine = pd.read_parquet("cluster/audit/run1/quarantine", filesystem=s3)
    assert quarantine["reason"].tolist() == ["empty text"]
    dataset = ds.dataset("cluster/audit/run1/scores", filesystem=s3, format="parquet")  # noqa: F841
    per_model = duckdb.sql(
        "select model, count(*) n, avg(p_freedom) p from dataset group by model order by model"
    ).fetchall()
    assert [(m, n) for m, n, _ in per_model] == [("m0", 20), ("m1", 20)]

    report = _audit(["report", f"{out}/stats"])
    assert f"{out}/stats/report.html" in report
    assert "cluster/audit/run1/stats/heatmap.png" in _files(s3, "cluster/audit/run1/stats")
    shutil.rmtree(tmp_path / "cache")  # the registry cache is a cache: a new one fills again
