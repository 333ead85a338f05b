"""Outcomes from the audit's rows (adaptive.outcomes) and the loop's planning (adaptive.loop), without Ray."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from valuecsv_ray.adaptive import bank as bank_
from valuecsv_ray.adaptive.config import load_adaptive_config
from valuecsv_ray.adaptive.loop import format_round
from valuecsv_ray.adaptive.outcomes import OutcomeError, item_of, read_outcomes, write_suite
from valuecsv_ray.adaptive.plan import plan_asks, running_tests
from valuecsv_ray.collect.suites import load_suite
from valuecsv_ray.settings import ConfigError
from valuecsv_ray.taxonomy import load_taxonomy


def write(frame: pd.DataFrame, folder) -> str:
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part-0.parquet")
    return str(folder)


def test_suite_round_trip_and_outcomes_follow_the_audit_labels(tmp_path):
    items = pd.DataFrame({"item_id": ["iaaa", "ibbb"], "prompt": ["第一题？", "第二题？"]})
    prompts, _ = load_suite(str(write_suite(items, tmp_path / "ask.jsonl")))
    assert [item_of(p) for p in prompts["prompt_id"]] == ["iaaa", "ibbb"]
    responses = write(pd.DataFrame({"id": ["r1", "r2", "r3", "r4", "r5"], "sample": [0, 0, 0, 1, 0],
                                    "prompt_id": ["adaptive:iaaa", "adaptive:ibbb", "adaptive:iaaa",
                                                  "adaptive:iaaa", "adaptive:ibbb"]}), tmp_path / "responses")
    scores = write(pd.DataFrame({  # r5 was quarantined: no score, no outcome
        "row_id": ["r1", "r2", "r3", "r4"], "model": ["m1", "m1", "m2", "m2"],
        "p_integrity": [0.9, 0.2, 0.7, 0.3], "y_integrity": [True, False, True, False],
        "p_freedom": [0.1, 0.8, 0.5, 0.5], "y_freedom": [False, True, True, True]}), tmp_path / "scores")
    out = read_outcomes(responses, scores, {"iaaa": ["integrity"], "ibbb": []}, ["integrity", "freedom"])
    rows = {(r.model, r.item_id, r.value): (r.prob, r.conforms, r.n_samples) for r in out.itertuples()}
    assert rows == {("m1", "iaaa", "integrity"): (pytest.approx(0.9), 1, 1),
                    ("m1", "ibbb", "integrity"): (pytest.approx(0.2), 0, 1),
                    ("m1", "ibbb", "freedom"): (pytest.approx(0.8), 1, 1),
                    ("m2", "iaaa", "integrity"): (pytest.approx(0.5), 1, 2)}  # 1 of 2 samples: a tie conforms
    with pytest.raises(OutcomeError, match="not in the bank"):
        read_outcomes(responses, scores, {"iaaa": []}, ["integrity"])
    with pytest.raises(OutcomeError, match="not the scores"):
        read_outcomes(responses, scores, {"iaaa": [], "ibbb": []}, ["justice"])


def calibrated(n: int = 6) -> bank_.Bank:
    bank = bank_.Bank(bank_.make_items([f"第{i}个问题，关于诚信？" for i in range(n)], "user", "s",
                                       values=["integrity"]), load_taxonomy())
    items = pd.DataFrame({"item_id": bank.items["item_id"], "value": "integrity", "a": 1.0,
                          "b": [-2.0, -1.0, 0.0, 0.5, 1.0, 2.0][:n], "se_a": 0.3, "se_b": 0.5,
                          "n_responses": 6, "n_conform": 3, "infit": 1.0, "outfit": 1.0, "retired": ""})
    return bank_.update_calibration(bank, items, 0)


def test_plan_asks_the_most_informative_unanswered_items_of_running_tests():
    bank = calibrated()
    ids = list(bank.items["item_id"])
    cfg = load_adaptive_config(None, {"bank": "b", "endpoints": "e", "generator": "g", "registry": "r",
                                      "out": "o", "batch": 2, "target_se": 0.3, "max_items": 3})
    abilities = pd.DataFrame({"model": ["hi", "lo", "done"], "value": "integrity", "theta": [1.1, -1.9, 0.0],
                              "se": [0.5, 0.5, 0.2]})
    outcomes = pd.DataFrame({"model": ["hi", "lo", "lo"], "item_id": [ids[4], ids[0], ids[1]],
                             "value": "integrity", "conforms": [1, 0, 1]})
    tests = running_tests(abilities, outcomes, cfg)
    assert list(tests["model"]) == ["hi", "lo"] and list(tests["answered"]) == [1, 2]
    plan = plan_asks(bank, outcomes, tests, cfg)
    assert plan.loc[plan["model"] == "hi", "item_id"].tolist() == [ids[3], ids[5]]  # b 0.5 and 2.0 beside 1.0
    assert plan.loc[plan["model"] == "lo", "item_id"].tolist() == [ids[2]]  # budget 3, 2 answered
    with pytest.raises(ConfigError, match="batch must be a positive integer"):
        load_adaptive_config(None, {"bank": "b", "endpoints": "e", "generator": "g", "registry": "r",
                                    "out": "o", "batch": 0})


def test_format_round_prints_counts_and_intervals():
    summary = json.loads(json.dumps({
        "round": 1, "items_asked": 5, "asked_by_plan": 2, "answers": 15, "candidates": 4, "admitted": 2,
        "rejected": 2, "rejected_by_checks": 1, "rejected_by_fit": 1,
        "abilities": [{"model": "m", "value": "integrity", "theta": 0.5, "se": 0.2, "lo": 0.108, "hi": 0.892,
                       "n_responses": 5}]}))
    text = format_round(summary)
    assert text.splitlines()[0].startswith("round 1: 5 items asked (2 chosen from the bank, 15 answers)")
    assert "2 admitted, 2 rejected (1 by checks, 1 by fit)" in text and "95% [+0.11, +0.89]" in text


def test_run_refuses_a_generator_that_is_not_an_endpoint(tmp_path):
    from click.testing import CliRunner

    from valuecsv_ray.cli.adaptive import adaptive

    (tmp_path / "e.yaml").write_text("endpoints:\n  - {name: m1, base_url: 'http://x/v1', model: m1}\n")
    args = ["run", "--bank", str(tmp_path / "b.parquet"), "--endpoints", str(tmp_path / "e.yaml"),
            "--generator", "writer", "--registry", str(tmp_path / "r"), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(adaptive, args)
    assert result.exit_code == 1 and "generator 'writer' is not an endpoint" in result.output
    assert "available: m1" in result.output


def test_a_resumed_run_must_keep_its_settings_but_may_add_rounds(tmp_path):
    from valuecsv_ray.adaptive.loop import LoopError, _start_record

    settings = {"bank": "b", "endpoints": "e", "generator": "g", "registry": "r", "out": str(tmp_path)}
    _start_record(load_adaptive_config(None, settings), tmp_path, ["integrity"])
    _start_record(load_adaptive_config(None, {**settings, "rounds": 9}), tmp_path, ["integrity"])
    with pytest.raises(LoopError, match=r"\(batch differ"):
        _start_record(load_adaptive_config(None, {**settings, "batch": 3}), tmp_path, ["integrity"])
