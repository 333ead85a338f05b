"""acc, acc*, Wilson intervals, consistency and position bias against hand counts (see conftest.py)."""

import math

import pandas as pd
import pytest

from valuecsv_ray.audit.statistics import wilson_interval
from valuecsv_ray.cvalues.metrics import (
    MetricsError,
    compute_metrics,
    eval_counts,
    load_scored,
    parse_answers,
    read_responses,
    write_scored,
)


def metric(metrics, model, scope="overall", key="all"):
    rows = metrics[(metrics["model"] == model) & (metrics["scope"] == scope) & (metrics["key"] == key)]
    assert len(rows) == 1, (model, scope, key)
    return rows.iloc[0]


@pytest.fixture
def scored(case_items, case_answers):
    return parse_answers(case_items, case_answers)


def test_parsed_table_and_not_collected_rows(scored):
    m1 = scored.parsed[scored.parsed["model"] == "m1"].set_index("prompt_id")
    assert m1["parsed"].to_dict() == {
        "cvalues-mc:p1:pos_first": "回复1", "cvalues-mc:p1:neg_first": "回复2",
        "cvalues-mc:p2:pos_first": "回复2", "cvalues-mc:p2:neg_first": "Other",
        "cvalues-mc:p3:pos_first": "Need_Check"}
    assert m1["correct"].tolist() == [True, True, False, False, False]
    lost = scored.not_collected
    assert lost[["model", "prompt_id", "status"]].values.tolist() == [
        ["m1", "cvalues-mc:p3:neg_first", "truncated"], ["m2", "cvalues-mc:p3:neg_first", "http_error"]]
    assert len(scored.parsed) + len(lost) == 12 and scored.ignored == 0


def test_overall_counts_acc_and_acc_star_equal_hand_counts(scored):
    row = metric(compute_metrics(scored.parsed, scored.not_collected), "m1")
    counts = row[["total", "correct", "answered", "other", "refuse", "need_check", "not_collected"]].tolist()
    assert counts == [5, 2, 4, 1, 0, 1, 1]  # the truncated answer is in no total
    assert row["acc"] == pytest.approx(2 / 5) and row["acc_star"] == pytest.approx(2 / 4)
    assert (row["acc_lo"], row["acc_hi"]) == pytest.approx(wilson_interval(2, 5))
    assert (row["acc_star_lo"], row["acc_star_hi"]) == pytest.approx(wilson_interval(2, 4))


def test_consistency_and_position_bias_equal_hand_counts(scored):
    row = metric(compute_metrics(scored.parsed, scored.not_collected), "m1")
    # pairs with both orders collected: p1 (both correct) and p2 (both wrong); p3 lost an order
    assert (row["complete_pairs"], row["consistent_pairs"], row["consistency"]) == (2, 1, 0.5)
    # answers that chose a reply: 回复1, 回复2, 回复2 -> 1/3 chose 回复1
    assert (row["chose_reply"], row["chose_1"]) == (3, 1)
    assert row["position_bias"] == pytest.approx(1 / 3 - 0.5)


def test_per_domain_difficulty_and_order(scored):
    metrics = compute_metrics(scored.parsed, scored.not_collected)
    law, psy = metric(metrics, "m1", "domain", "法律"), metric(metrics, "m1", "domain", "心理学")
    assert law[["total", "correct", "answered", "complete_pairs"]].tolist() == [4, 2, 4, 2]
    assert psy[["total", "answered", "need_check", "not_collected"]].tolist() == [1, 0, 1, 1]
    assert math.isnan(psy["acc_star"]) and math.isnan(psy["consistency"])
    assert "acc* undefined" in psy["note"] and "consistency undefined" in psy["note"]
    pos, neg = metric(metrics, "m1", "order", "pos_first"), metric(metrics, "m1", "order", "neg_first")
    assert pos[["total", "correct", "answered", "not_collected"]].tolist() == [3, 1, 2, 0]
    assert neg[["total", "correct", "answered", "not_collected"]].tolist() == [2, 1, 2, 1]
    assert math.isnan(pos["consistency"])  # a pair's two orders are never in one order group
    hard = metric(metrics, "m1", "difficulty", "hard")
    assert hard[["total", "correct", "answered", "other"]].tolist() == [2, 0, 2, 1]


def test_no_answered_rows_gives_nan_and_a_note_not_a_zero_division(scored):
    row = metric(compute_metrics(scored.parsed, scored.not_collected), "m2")
    assert row[["total", "correct", "answered", "refuse", "not_collected"]].tolist() == [5, 0, 0, 5, 1]
    assert row["acc"] == 0.0 and math.isnan(row["acc_star"])
    assert math.isnan(row["acc_star_lo"]) and math.isnan(row["acc_star_hi"])
    assert math.isnan(row["position_bias"])
    assert "no answered items (all Need_Check or Refuse): acc* undefined" in row["note"]


def test_eval_counts_follow_upstream():
    counts = eval_counts(["回复1", "回复2", "回复1", "回复2", "回复1"],
                         ["回复1", "Other", "Refuse", "Need_Check", "回复2"])
    assert counts == {"total": 5, "correct": 1, "answered": 3, "other": 1, "refuse": 1, "need_check": 1}


def test_samples_are_separate_answers(case_items, case_answers):
    more = case_answers[case_answers["model"] == "m1"].assign(sample=1)
    scored = parse_answers(case_items, pd.concat([case_answers, more], ignore_index=True))
    row = metric(compute_metrics(scored.parsed, scored.not_collected), "m1")
    assert (row["total"], row["correct"], row["complete_pairs"], row["consistent_pairs"]) == (10, 4, 4, 2)


def test_bad_answers_are_refused_with_the_reason(case_items, case_answers):
    with pytest.raises(MetricsError, match="column status: 'failed'"):
        parse_answers(case_items, case_answers.assign(status="failed"))
    with pytest.raises(MetricsError, match="'cvalues-mc:zz:pos_first' is not in the items file"):
        parse_answers(case_items, case_answers.assign(prompt_id="cvalues-mc:zz:pos_first"))
    with pytest.raises(MetricsError, match="none of the 12 responses"):
        parse_answers(case_items, case_answers.assign(prompt_id="quest100:1"))
    with pytest.raises(MetricsError, match="appears more than once"):
        parse_answers(case_items, pd.concat([case_answers, case_answers.head(1)]))
    with pytest.raises(MetricsError, match="lack column"):
        parse_answers(case_items, case_answers.drop(columns="status"))


def test_other_suites_are_ignored_and_counted(case_items, case_answers):
    other = case_answers.head(2).assign(prompt_id=["quest100:1", "quest100:2"])
    scored = parse_answers(case_items, pd.concat([case_answers, other], ignore_index=True))
    assert scored.ignored == 2 and len(scored.parsed) == 10


def test_write_and_load_round_trip(tmp_path, scored):
    metrics = compute_metrics(scored.parsed, scored.not_collected)
    paths = write_scored(tmp_path / "out", scored.parsed, scored.not_collected, metrics)
    assert all(p.is_file() for p in paths.values())
    assert len(pd.read_csv(paths["metrics_csv"])) == len(pd.read_parquet(paths["metrics"])) == len(metrics)
    parsed, lost = load_scored(tmp_path / "out")
    pd.testing.assert_frame_equal(parsed, scored.parsed)
    assert len(lost) == 2
    with pytest.raises(MetricsError, match="run `valuecsv-ray cvalues score"):
        load_scored(tmp_path / "nowhere")


def test_read_responses_from_a_folder_and_missing_columns(tmp_path, case_answers):
    folder = tmp_path / "responses"
    folder.mkdir()
    case_answers.iloc[:6].to_parquet(folder / "part-0.parquet")
    case_answers.iloc[6:].to_parquet(folder / "part-1.parquet")
    assert len(read_responses(folder)) == 12
    case_answers.drop(columns="status").to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(MetricsError, match=r"bad\.parquet: missing column\(s\) status"):
        read_responses(tmp_path / "bad.parquet")
    with pytest.raises(MetricsError, match="no Parquet responses"):
        read_responses(tmp_path / "empty")
