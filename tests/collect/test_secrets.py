"""An API key a server echoes back (the stub's `echo_key` fault) is in no record, error or log line.

Usage: python -m pytest tests/collect/test_secrets.py -q
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from stub_inputs import read_responses, write_endpoints, write_suite  # tests/collect/stub_inputs.py

from valuecsv_ray.cli import main
from valuecsv_ray.collect.config import load_collect_config
from valuecsv_ray.collect.pipeline import CollectStopped, run_collect
from valuecsv_ray.collect.requester import REDACTED
from valuecsv_ray.testing.llm_stub import StubLLM

pytestmark = pytest.mark.ray

KEY = "sk-proj-" + "Zq7xW3kP" * 8  # what must never show up
PROMPTS = [f"第{i}题：隐私为什么重要？" for i in range(40)]


@pytest.mark.parametrize("provider", ["openai-chat", "openai-completions"])
def test_an_echoed_key_is_in_no_record_error_or_log(provider, ray_local, tmp_path, monkeypatch, caplog,
                                                    capfd):
    """The first run stops at its budget (a raised error), the second finishes through the CLI;
    the two echoing prompts come first, so their only attempt is recorded before the stop. Both
    providers: the key goes out in a provider's headers, and comes back in the server's texts."""
    stub_path = {"openai-chat": "chat/completions", "openai-completions": "completions"}[provider]
    monkeypatch.setenv("STUB_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    faults = {PROMPTS[0]: ["echo_key"] * 3, PROMPTS[1]: ["echo_key"] * 3}
    out = tmp_path / "out"
    with StubLLM(api_key=KEY, faults=faults, latency_s=1.0) as stub:
        endpoints = write_endpoints(
            tmp_path / "e.yaml", stub.base_url, provider=provider, max_attempts=1, max_in_flight=8,
            timeout_s=5,
        )
        suite = write_suite(tmp_path / "s.jsonl", PROMPTS)
        settings = {
            "suites": [str(suite)],
            "endpoints": str(endpoints),
            "out": str(out),
            "max_total_tokens": 1,
        }
        with pytest.raises(CollectStopped) as stopped:
            run_collect(load_collect_config(None, settings), progress=False)
        cli = CliRunner().invoke(
            main, ["collect", "--suite", str(suite), "--endpoints", str(endpoints), "--out", str(out)]
        )
        assert cli.exit_code == 0, cli.output
        assert all(r.authorized for r in stub.requests())  # the key was sent, and echoed
        assert {r.path for r in stub.requests()} == {f"/v1/{stub_path}"}
    rows = read_responses(out)
    echoed = rows[rows["prompt"].isin(faults)]
    assert len(echoed) == 6 and set(echoed["status"]) == {"http_error"}
    assert set(echoed["error"]) == {
        f"HTTP 500: Upstream refused the request (Authorization: Bearer {REDACTED})."
    }
    assert len(rows) == len(PROMPTS) * 3
    leaks = {"raised error": str(stopped.value) + repr(stopped.value.summary), "CLI output": cli.output}
    leaks |= {f"log record {r.name}": r.getMessage() for r in caplog.records}
    leaks["driver stdout/stderr"] = "".join(capfd.readouterr())
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        if path.suffix == ".parquet":
            text += repr(pq.read_table(path).to_pylist())
        leaks[str(path.relative_to(out))] = text
    for path in _ray_logs():
        leaks[f"Ray log {path.name}"] = path.read_bytes().decode("utf-8", errors="replace")
    assert len(leaks) > 8 and not [where for where, text in leaks.items() if KEY in text], "the key leaked"


def _ray_logs() -> list[Path]:
    """The files of this Ray session's log folder (workers, raylet, Ray Data)."""
    import ray._private.worker as worker

    node = worker._global_node
    return [p for p in Path(node.get_logs_dir_path()).rglob("*") if p.is_file()] if node is not None else []
