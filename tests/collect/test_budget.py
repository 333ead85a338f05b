"""Token usage, cost and a run's budget: priced per endpoint, stopped cleanly, resumed without a
paid answer lost or asked twice (against the stub LLM, whose usage counts characters).

Usage: python -m pytest tests/collect/test_budget.py -q
"""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
from click.testing import CliRunner
from stub_inputs import read_responses, write_endpoints, write_suite  # tests/collect/stub_inputs.py

from valuecsv_ray.cli import main
from valuecsv_ray.collect.budget import Meter, row_cost, row_tokens, usage
from valuecsv_ray.collect.config import Endpoint, load_collect_config
from valuecsv_ray.collect.pipeline import SUMMARY, CollectStopped, run_collect
from valuecsv_ray.settings import ConfigError
from valuecsv_ray.testing.llm_stub import StubLLM

PRICES = {"input_price_per_million": 2.0, "output_price_per_million": 8.0}


def test_row_tokens_and_cost():
    priced = Endpoint(name="a", base_url="http://x/v1", model="m", **PRICES)
    assert (
        row_tokens(10, 30, 40) == 40 and row_tokens(10, 30, None) == 40 and row_tokens(None, None, None) == 0
    )
    assert row_cost(priced, 1_000_000, 500_000) == pytest.approx(2.0 + 4.0)
    assert row_cost(Endpoint(name="b", base_url="http://x/v1", model="m"), 10**6, 10**6) == 0.0


def test_usage_per_endpoint_and_in_total():
    endpoints = [
        Endpoint(name="a", base_url="http://x/v1", model="m", **PRICES),
        Endpoint(name="b", base_url="http://x/v1", model="m"),
    ]
    frame = pd.DataFrame(
        {
            "model": ["a", "a", "a", "b"],
            "prompt_tokens": [100, 200, None, 50],
            "completion_tokens": [1000, 2000, None, 70],
            "total_tokens": [1100, 3000, None, 120],
        }
    )
    got = usage(frame, endpoints)
    a, b = got["by_endpoint"]["a"], got["by_endpoint"]["b"]
    assert (a["prompt_tokens"], a["completion_tokens"], a["total_tokens"], a["rows_without_usage"]) == (
        300,
        3000,
        4100,
        1,
    )
    assert a["cost"] == pytest.approx((300 * 2 + 3000 * 8) / 1e6) and b["cost"] is None
    assert got["total"]["total_tokens"] == 4220 and got["total"]["cost"] == pytest.approx(a["cost"])


def test_meter_closes_at_either_limit():
    tokens = Meter(max_total_tokens=100)
    assert tokens.charge(60, 0.0) and not tokens.charge(40, 0.0) and not tokens.is_open()
    assert tokens.reason() == "max_total_tokens 100 reached: this run's 2 answers used 100 tokens"
    money = Meter(max_cost=0.5)
    assert money.charge(10**6, 0.3) and not money.charge(1, 0.25)
    assert money.state()["reason"].startswith("max_cost 0.5 reached: this run's 2 answers cost 0.55")
    assert Meter().charge(10**9, 10**9)  # no budget: always open


def test_max_cost_without_prices_is_refused_before_any_request(tmp_path, stub_key):
    endpoints = write_endpoints(tmp_path / "e.yaml", "http://127.0.0.1:9/v1")
    settings = {
        "suites": [str(write_suite(tmp_path / "s.jsonl", ["你好"]))],
        "endpoints": str(endpoints),
        "out": str(tmp_path / "out"),
        "max_cost": 1.0,
    }
    with pytest.raises(ConfigError) as e:
        run_collect(load_collect_config(None, settings), progress=False)
    assert "max_cost needs input_price_per_million and output_price_per_million on endpoint 'alpha'" in str(
        e.value
    )
    assert "'beta'" in str(e.value) and not (tmp_path / "out").exists()


@pytest.mark.ray
def test_a_budget_stops_the_run_and_the_rerun_asks_only_what_was_not_answered(ray_local, tmp_path, stub_key):
    """A token budget stops the first run, a cost budget (through the CLI) the second, the third
    finishes: every answer the stub sent is written once and never asked for again."""
    prompts = [f"第{i}题：谈谈节约资源。" for i in range(30)]  # x 3 rows (alpha 1 sample, beta 2)
    out = tmp_path / "out"
    with StubLLM(latency_s=0.05) as stub:
        endpoints = write_endpoints(tmp_path / "e.yaml", stub.base_url, **PRICES)
        settings = {"suites": [str(write_suite(tmp_path / "s.jsonl", prompts))], "endpoints": str(endpoints)}
        settings |= {"out": str(out), "max_total_tokens": 1200}
        with pytest.raises(CollectStopped) as stopped:
            run_collect(load_collect_config(None, settings), progress=False)
        answered_first = _answered(stub)
        first = read_responses(out)

        summary = json.loads((out / SUMMARY).read_text())
        assert summary == stopped.value.summary
        assert summary["stopped"].startswith("max_total_tokens 1200 reached: this run's")
        run = summary["this_run"]
        assert run["rows_asked"] == len(first) and run["rows_not_asked"] == summary["missing"] == 90 - len(
            first
        )
        assert run["tokens"] == first["total_tokens"].sum() >= 1200
        # no request started once the budget was spent: the overshoot is what was on the wire (caps 3 + 2)
        assert run["tokens"] - 1200 < 5 * first["total_tokens"].max()
        assert sorted(answered_first) == sorted(_keys(first)), "an answer the stub sent was not written"
        assert "stopped at the budget" in str(stopped.value) and "re-run the same command" in str(
            stopped.value
        )

        args = ["collect", "--suite", settings["suites"][0], "--endpoints", str(endpoints), "--out", str(out)]
        cli = CliRunner().invoke(main, [*args, "--max-cost", "0.004"])
        assert cli.exit_code == 1, cli.output
        assert (
            "stopped: max_cost 0.004 reached" in cli.output and "error: stopped at the budget" in cli.output
        )
        second = read_responses(out)
        assert 0 < len(second) - len(first) < 90 - len(first)

        done = run_collect(load_collect_config(None, {**settings, "max_total_tokens": None}), progress=False)
        answered = _answered(stub)
    rows = read_responses(out)
    assert len(rows) == 90 and rows["id"].is_unique and done.summary["stopped"] is None
    assert Counter(answered) == Counter(_keys(rows)), "an answered request was sent again"
    assert done.summary["this_run"]["rows_to_ask"] == 90 - len(second)
    alpha = rows[rows["model"] == "alpha"]
    assert done.summary["usage"]["by_endpoint"]["alpha"]["cost"] == pytest.approx(
        (alpha["prompt_tokens"].sum() * 2.0 + alpha["completion_tokens"].sum() * 8.0) / 1e6
    )
    assert done.summary["usage"]["total"]["total_tokens"] == rows["total_tokens"].sum()


def _answered(stub: StubLLM) -> list[tuple]:
    """(model, prompt, seed) of every request the stub answered with a completion."""
    return [(r.model, r.prompt, r.body.get("seed")) for r in stub.requests() if r.status == 200]


def _keys(rows: pd.DataFrame) -> list[tuple]:
    seeds = [None if m == "alpha" else 7 + s for m, s in zip(rows["model"], rows["sample"], strict=True)]
    return list(zip(rows["api_model"], rows["prompt"], seeds, strict=True))
