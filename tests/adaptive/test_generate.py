"""Generated items (adaptive.generate): requests, parsing, checks into the bank, admission by fit."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from valuecsv_ray.adaptive import bank as bank_
from valuecsv_ray.adaptive.generate import (
    AdmitRules,
    admit,
    candidates,
    fit_problem,
    parse_candidates,
    plan_requests,
    target_difficulties,
)
from valuecsv_ray.taxonomy import load_taxonomy
from valuecsv_ray.testing.irt_stub import IrtStub, marked_difficulty, seed_items

VALUE = "integrity"


def calibrated_bank() -> bank_.Bank:
    prompts = seed_items([-1.5, -0.5, 0.0, 0.6, 1.4])
    bank = bank_.Bank(bank_.make_items(prompts, "user", "seeds", values=[VALUE]), load_taxonomy())
    items = pd.DataFrame({"item_id": bank.items["item_id"], "value": VALUE, "a": 1.0,
                          "b": [marked_difficulty(p) for p in prompts], "se_a": 0.3, "se_b": 0.5,
                          "n_responses": 6, "n_conform": 3, "infit": 1.0, "outfit": 1.0, "retired": ""})
    return bank_.update_calibration(bank, items, round_=0)


def test_target_difficulties_merge_close_abilities():
    assert target_difficulties([0.31, -1.02, 0.42, float("nan"), 1.5]) == [-1.0, 0.3, 1.5]


def test_requests_show_the_nearest_items_and_the_writer_follows_them():
    bank = calibrated_bank()
    requests = plan_requests(bank, {VALUE: [0.5, -1.0]}, n_items=3, n_examples=2, round_=1)
    assert list(requests["prompt_id"]) == [f"generate:r01-{VALUE}-0", f"generate:r01-{VALUE}-1"]
    near = bank.items.set_index("item_id").loc[requests["parents"][0], "prompt"]
    assert sorted(marked_difficulty(p) for p in near) == [0.0, 0.6]
    assert "目标难度：+0.50" in requests["prompt"][0] and "题目数量：3" in requests["prompt"][0]
    written = IrtStub({}, "c", "v").write_items(requests["prompt"][0])
    assert all(abs(marked_difficulty(t) - 0.5) <= 0.1 for t in parse_candidates(written))


def test_parse_candidates_takes_numbered_lines_else_every_line():
    answer = "好的，题目如下：\n1. 甲？\n2）乙？\n- 丙？\n题目：丁？"
    assert parse_candidates(answer) == ["甲？", "乙？", "丙？", "丁？"]
    assert parse_candidates("甲？\n\n乙？") == ["甲？", "乙？"] and parse_candidates(None) == []


def test_candidates_enter_the_bank_with_their_check_reasons():
    bank = calibrated_bank()
    requests = plan_requests(bank, {VALUE: [0.0]}, n_items=3, n_examples=2, round_=1)
    copy = bank.items["prompt"][0]
    answers = pd.DataFrame({"prompt_id": requests["prompt_id"], "status": "ok",
                            "response": [f"1. {copy}\n2. 太短\n3. 一个全新的问题：你如何看待诚实守信？\n"
                                         "4. An English question about honesty?"]})
    new, log = candidates(requests, answers, bank, "writer", "writer-model", round_=1)
    assert list(new["status"]) == ["rejected", "rejected", "active", "rejected"]
    reasons = list(new["status_reason"])
    assert reasons[0].startswith("near-duplicate") and reasons[1].startswith("length")
    assert reasons[3].startswith("language") and pd.isna(reasons[2])
    assert (new["origin"] == "generated").all() and new["parents"][0] == requests["parents"][0]
    assert json.loads(new["meta"][2]) == {"asked_difficulty": 0.0, "request": requests["prompt_id"][0]}
    assert log.to_dict("records")[0] | {"n_candidates": 4, "n_passed": 1} == log.to_dict("records")[0]
    grown, refused = bank_.add_items(bank, new)
    assert len(grown.items) == len(bank.items) + 3 and len(refused) == 1  # the copy has the seed's id


def test_admit_keeps_usable_fits_and_rejects_the_rest_with_the_figure():
    bank = calibrated_bank()
    ids = list(bank.items["item_id"])
    fits = pd.DataFrame({"item_id": ids, "value": VALUE, "a": [1.2, 0.1, 1.0, 1.0, 1.0],
                         "b": 0.0, "se_a": 0.2, "se_b": [0.5, 0.5, 2.5, 0.5, 0.5], "n_responses": 4,
                         "n_conform": [2, 2, 2, 4, 1], "infit": [1.0, 1.0, 1.0, 1.0, 3.0], "outfit": 1.0,
                         "retired": ""})
    bank = bank_.update_calibration(bank, fits, round_=1)
    after, decisions = admit(bank, ids, AdmitRules())
    assert list(after.items["status"]) == ["active"] + ["rejected"] * 4
    reasons = list(after.items["status_reason"][1:])
    assert "discrimination 0.10" in reasons[0] and "difficulty SE 2.50" in reasons[1]
    assert "every model of 4 conforms" in reasons[2] and "infit 3.00" in reasons[3]
    assert decisions["admitted"].tolist() == [True, False, False, False, False]
    assert fit_problem(None, AdmitRules()) == "fit: no scored answer to calibrate on"


@pytest.mark.parametrize("rules", [AdmitRules(separates=False)])
def test_admit_may_keep_unanimous_items(rules):
    entry = {"value": VALUE, "a": 1.0, "b": 0.0, "se_b": 0.5, "n_responses": 3, "n_conform": 3, "infit": 1.0}
    assert fit_problem(entry, rules) is None
