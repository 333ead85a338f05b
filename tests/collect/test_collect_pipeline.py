"""Collecting with Ray Data against a real OpenAI-compatible stub server (valuecsv_ray.testing.llm_stub)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from stub_inputs import read_responses, write_endpoints, write_suite  # tests/collect/stub_inputs.py

from valuecsv_ray.collect.config import load_collect_config
from valuecsv_ray.collect.pipeline import RESPONSES, CollectError, run_collect
from valuecsv_ray.testing.llm_stub import StubLLM

pytestmark = pytest.mark.ray

PROMPTS = [f"第{i}个问题：你怎么看待诚信？" for i in range(12)]
FAULTS = {  # prompt -> the stub's answer per attempt (counted per model: beta's 2 samples share
    # the count), and the status every row of the prompt must end with
    PROMPTS[0]: (["429"], "ok"),
    PROMPTS[1]: (["503", "503"], "ok"),
    PROMPTS[2]: (["400"], "http_error"),
    PROMPTS[3]: (["slow"] * 6, "timeout"),
    PROMPTS[4]: (["malformed", "html"] * 3, "bad_response"),  # retried, then recorded
    PROMPTS[5]: (["null"] * 2, "empty"),
    PROMPTS[6]: (["length"] * 2, "truncated"),
    PROMPTS[7]: (["500"] * 6, "http_error"),
    PROMPTS[8]: (["html"], "ok"),  # a proxy's error page once, then the answer
    PROMPTS[9]: (["parts"] * 2, "ok"),  # content as a list of text parts
}


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_every_request_ends_as_one_row_with_its_status(ray_local, tmp_path, stub_key):
    faults = {p: f for p, (f, _) in FAULTS.items()}
    with StubLLM(latency_s=0.05, faults=faults, retry_after_s=0.3, slow_s=2.0) as stub:
        cfg = load_collect_config(
            None,
            {
                "suites": [str(write_suite(tmp_path / "s.jsonl", PROMPTS))],
                "endpoints": str(write_endpoints(tmp_path / "e.yaml", stub.base_url)),
                "out": str(tmp_path / "out"),
            },
        )
        result = run_collect(cfg, progress=False)
        log = stub.requests()
    rows = read_responses(tmp_path / "out")
    assert len(rows) == len(PROMPTS) * 3 == result.summary["rows_written"]  # alpha 1 sample, beta 2
    assert not rows.duplicated(["model", "prompt_id", "sample"]).any() and rows["id"].is_unique
    for prompt, (_, status) in FAULTS.items():
        assert set(rows.loc[rows["prompt"] == prompt, "status"]) == {status}, prompt
    ok = rows[~rows["prompt"].isin(FAULTS)]
    assert (ok["status"] == "ok").all() and ok["response"].str.len().gt(0).all()
    assert ok["prompt_tokens"].notna().all() and (ok["finish_reason"] == "stop").all()
    assert rows.loc[rows["status"] != "ok", "error"].notna().all()
    assert rows.loc[rows["status"].isin(["ok", "truncated"]) == False, "response"].isna().all()  # noqa: E712
    beta = rows[rows["model"] == "beta"]
    assert set(beta["sample"]) == {0, 1} and set(json.loads(beta["params"].iloc[0]).items()) >= {("seed", 7)}
    # the cap per endpoint held for the requests on the wire
    for model, cap in (("stub-a", 3), ("stub-b", 2)):
        assert max_overlap([(r.t_start, r.t_end) for r in log if r.model == model]) <= cap
    # Retry-After honoured: the retry of a 429 started at least 0.3 s after the 429 was sent
    tries = sorted(
        (r for r in log if r.prompt == PROMPTS[0] and r.model == "stub-a"), key=lambda r: r.t_start
    )
    assert tries[0].status == 429 and tries[1].t_start - tries[0].t_end >= 0.3 - 0.01
    assert result.summary["status_counts"]["ok"] == len(ok) + 3 * 4  # four faulty prompts end ok
    assert (rows.loc[rows["prompt"] == PROMPTS[9], "response"].str.len() > 0).all()


def test_rerun_asks_nothing_again_and_a_changed_plan_is_refused(ray_local, tmp_path, stub_key):
    with StubLLM() as stub:
        endpoints = write_endpoints(tmp_path / "e.yaml", stub.base_url)
        settings = {
            "suites": [str(write_suite(tmp_path / "s.jsonl", PROMPTS[8:]))],
            "endpoints": str(endpoints),
            "out": str(tmp_path / "out"),
        }
        run_collect(load_collect_config(None, settings), progress=False)
        sent = len(stub.requests())
        again = run_collect(load_collect_config(None, settings), progress=False)
        assert len(stub.requests()) == sent and again.summary["rows_written"] == 4 * 3
        part = sorted((tmp_path / "out" / RESPONSES).glob("*.parquet"))[0]
        lost = pq.read_table(part).num_rows
        part.write_bytes(part.read_bytes()[:100])  # a file cut off by an interruption
        (tmp_path / "out" / RESPONSES / "part-x.tmp").write_bytes(b"PAR1")  # a write cut before its rename
        redone = run_collect(load_collect_config(None, settings), progress=False)
        assert len(stub.requests()) == sent + lost and redone.summary["duplicates"] == 0
        assert len(read_responses(tmp_path / "out")) == 4 * 3
        assert not list((tmp_path / "out" / RESPONSES).glob("*.tmp"))
        write_endpoints(endpoints, stub.base_url, temperature=0.1)
        with pytest.raises(CollectError, match="new --out folder"):
            run_collect(load_collect_config(None, settings), progress=False)


def test_a_killed_run_loses_only_its_last_answers_and_resumes_sending_only_the_missing_requests(
    tmp_path, stub_key
):
    """`valuecsv-ray collect` killed midway (SIGKILL to its process group), then run again. Every
    15th prompt is slow (its first attempt times out after 8 s), so batches stay open long after
    most of their answers came: an answer the stub sent more than flush_s (+ slack for a loaded
    machine) before the kill must be on disk, whatever else its batch waits for."""
    prompts = [f"问题{i}：如何看待公平？" for i in range(60)]
    flush_s, slack_s = 0.5, 2.5
    with StubLLM(latency_s=0.25, faults={p: ["slow"] for p in prompts[::15]}, slow_s=20) as stub:
        endpoints = write_endpoints(tmp_path / "e.yaml", stub.base_url, timeout_s=8)
        args = [
            str(Path(sys.executable).with_name("valuecsv-ray")),
            "collect",
            "--suite",
            str(write_suite(tmp_path / "s.jsonl", prompts)),
            "--endpoints",
            str(endpoints),
            "--out",
            str(tmp_path / "out"),
            "--batch-size",
            "6",
            "--flush-s",
            str(flush_s),
        ]
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        with (tmp_path / "first.log").open("w") as log:
            proc = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:  # 45 answers, the first 4 s old
                answers = [r.t_end for r in stub.requests() if r.status == 200]
                if len(answers) >= 45 and time.monotonic() - min(answers) > 4:
                    break
                time.sleep(0.1)
            killed_at = time.monotonic()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _wait_until_quiet(stub)  # the killed run's Ray workers notice and exit
        first = read_responses(tmp_path / "out")
        assert 0 < len(first) < 180, (tmp_path / "first.log").read_text()[-2000:]
        answered_before = {
            (r.model, r.prompt, (r.body or {}).get("seed"))
            for r in stub.requests()
            if r.status == 200 and r.t_end < killed_at - flush_s - slack_s
        }
        stub.reset()
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        second = stub.requests()
    rows = read_responses(tmp_path / "out")
    assert len(rows) == 60 * 3 and rows["id"].is_unique
    seeds = [None if m == "alpha" else 7 + s for m, s in zip(first["model"], first["sample"], strict=True)]
    already = set(zip(first["api_model"], first["prompt"], seeds, strict=True))
    assert len(answered_before) >= 15  # the kill came well after many answers
    assert answered_before <= already, "an answer was lost long after it came"
    asked = [(r.model, r.prompt, (r.body or {}).get("seed")) for r in second]
    assert not already & set(asked), "a request answered in the first run was sent again"
    # the rerun asked what it found missing, each once but for its own retries (a request that
    # timed out on a loaded machine is sent again; the row counts its attempts)
    to_ask = int(re.search(r"(\d+) to ask", done.stderr + done.stdout).group(1))
    assert to_ask == 180 - len(first) and len(set(asked)) == to_ask
    retries = int((rows.loc[~rows["id"].isin(first["id"]), "attempts"] - 1).sum())
    assert len(asked) - to_ask == retries, "a request of the rerun was sent twice without a retry"


def _wait_until_quiet(stub: StubLLM, quiet_s: float = 3.0, limit_s: float = 60.0) -> None:
    """Until the stub has received no request for `quiet_s` (the killed run has stopped sending)."""
    deadline = time.monotonic() + limit_s
    seen, since = len(stub.requests()), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, f"requests still arrive {limit_s:.0f} s after the kill"
        time.sleep(0.2)
        if (now := len(stub.requests())) != seen:
            seen, since = now, time.monotonic()
