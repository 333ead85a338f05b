"""--redo-failed: only rows whose status is not ok are asked again; ok rows stay as they were.

Usage: python -m pytest tests/collect/test_redo_failed.py -q
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from stub_inputs import read_responses, write_endpoints, write_suite  # tests/collect/stub_inputs.py

from valuecsv_ray.cli import main
from valuecsv_ray.collect.pipeline import RESPONSES, SUMMARY
from valuecsv_ray.collect.redo import SUPERSEDED, redo_summary, supersede_failed
from valuecsv_ray.collect.schema import RESPONSE_SCHEMA
from valuecsv_ray.testing.llm_stub import StubLLM

PROMPTS = [f"第{i}题：如何看待友善？" for i in range(8)]
FAULTS = {  # 3 tries per row: alpha's row fails the first run, one of beta's two samples (which
    # share the stub's count) may; a redo's tries are answered
    PROMPTS[0]: ["500"] * 3,
    PROMPTS[1]: ["html"] * 3,  # bad_response, then answered
    PROMPTS[2]: ["400"],  # permanent: fails again
}


def part(path, statuses: list[str], first: int = 0) -> None:
    n = len(statuses)
    now = datetime.now(timezone.utc)
    columns = {f.name: [None] * n for f in RESPONSE_SCHEMA}
    columns |= {"id": [f"r{first + i}" for i in range(n)], "status": statuses, "attempts": [1] * n}
    columns |= {"latency_s": [0.1] * n, "finished_at": [now] * n, "sample": [0] * n}
    for c in ("model", "prompt_id", "suite", "prompt", "api_model", "base_url", "params", "meta"):
        columns[c] = ["x"] * n
    pq.write_table(pa.table(columns, schema=RESPONSE_SCHEMA), path)


def test_supersede_moves_failed_rows_whole_and_keeps_ok_rows_in_place(tmp_path):
    folder = tmp_path / RESPONSES
    folder.mkdir()
    part(folder / "part-a.parquet", ["ok", "timeout", "ok"])
    part(folder / "part-b.parquet", ["http_error", "empty"], first=3)
    part(folder / "part-c.parquet", ["ok"], first=5)
    (folder / "part-d.parquet").write_bytes(b"PAR1 cut off")  # left for the resume to remove
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}
    assert supersede_failed(str(tmp_path)) == {"timeout": 1, "http_error": 1, "empty": 1}
    assert pq.read_table(folder / "part-a.parquet")["id"].to_pylist() == ["r0", "r2"]
    assert not (folder / "part-b.parquet").exists()  # held failed rows only
    assert (folder / "part-c.parquet").stat().st_mtime_ns == before["part-c.parquet"]  # untouched
    (moved,) = (tmp_path / SUPERSEDED).glob("redo-*.parquet")
    table = pq.read_table(moved)
    assert table.schema.equals(RESPONSE_SCHEMA) and sorted(table["id"].to_pylist()) == ["r1", "r3", "r4"]
    assert supersede_failed(str(tmp_path)) == {}  # nothing failed is left


def test_a_move_repeated_after_an_interruption_counts_each_row_once(tmp_path):
    folder = tmp_path / RESPONSES
    folder.mkdir()
    part(folder / "part-a.parquet", ["ok", "timeout"])
    original = (folder / "part-a.parquet").read_bytes()
    supersede_failed(str(tmp_path))
    (folder / "part-a.parquet").write_bytes(original)  # as if killed before the part was rewritten
    supersede_failed(str(tmp_path))
    assert len(list((tmp_path / SUPERSEDED).glob("*.parquet"))) == 1  # the same move, the same file
    responses = pq.read_table(folder).to_pandas()
    assert redo_summary(responses, str(tmp_path)) == {
        "retried": 1,
        "were": {"timeout": 1},
        "now": {"not_asked": 1},
    }


@pytest.mark.ray
def test_redo_failed_asks_only_the_failed_rows_again(ray_local, tmp_path, stub_key):
    out = tmp_path / "out"
    with StubLLM(faults=FAULTS) as stub:
        endpoints = write_endpoints(tmp_path / "e.yaml", stub.base_url, timeout_s=5)
        args = ["collect", "--suite", str(write_suite(tmp_path / "s.jsonl", PROMPTS))]
        args += ["--endpoints", str(endpoints), "--out", str(out)]
        assert CliRunner().invoke(main, args).exit_code == 0
        first = read_responses(out).set_index("id")
        failed = first[first["status"] != "ok"]
        assert set(failed["prompt"]) == set(FAULTS) and len(failed) >= 5
        sent = len(stub.requests())  # attempts go on counting: the redo's tries are answered
        redo = CliRunner().invoke(main, [*args, "--redo-failed"])
        assert redo.exit_code == 0, redo.output
        asked = {(r.model, r.prompt) for r in stub.requests()[sent:]}
        sent = len(stub.requests())
        assert CliRunner().invoke(main, args).exit_code == 0 and len(stub.requests()) == sent  # nothing left
    assert asked == {(m, p) for m, p in zip(failed["api_model"], failed["prompt"], strict=True)}
    rows = read_responses(out).set_index("id")
    assert len(rows) == len(PROMPTS) * 3 and rows.index.is_unique
    kept = first[first["status"] == "ok"].index
    assert rows.loc[kept].equals(first.loc[kept]), "an ok row changed"
    ended = rows.loc[failed.index, "status"]
    permanent = failed["prompt"] == PROMPTS[2]
    assert set(ended[~permanent]) == {"ok"} and set(ended[permanent]) == {"http_error"}
    moved = pq.read_table(out / SUPERSEDED).to_pandas().set_index("id")
    assert moved.sort_index().equals(failed.sort_index()), (
        "a superseded row is not the failed row it replaced"
    )
    summary = json.loads((out / SUMMARY).read_text())
    n = len(failed)
    assert summary["redo_failed"] == {
        "retried": n,
        "were": failed["status"].value_counts().to_dict(),
        "now": {"ok": n - 3, "http_error": 3},
    }
    assert f"redone (failed rows asked again): {n}, now http_error 3, ok {n - 3}" in redo.output
