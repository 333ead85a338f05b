"""Paired comparison: Holm against a hand computation, a shift on one value found significant and
the others not, and the errors (the bootstrap itself: tests/test_resampling.py)."""

import re

import numpy as np
import pandas as pd
import pytest

from valuecsv_ray.audit.schema import prob_column
from valuecsv_ray.leaderboard.compare import (
    COMPARE_COLUMNS,
    compare,
    format_compare,
    holm,
)
from valuecsv_ray.leaderboard.profiles import LeaderboardError


def test_holm_equals_a_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # 0.5*2 = 1.0 caps, 0.6 inherits it
    np.testing.assert_allclose(holm([0.02]), [0.02])
    assert holm([]).shape == (0,)


def shifted_pair(taxonomy, make_scores, value_id: str, n_prompts: int = 60) -> pd.DataFrame:
    """Model b answers like a plus independent noise, and 0.2 higher on `value_id`."""
    a = make_scores(taxonomy, {"a": 0.0}, n_prompts=n_prompts, samples=2, noise=0.05, seed=1)
    rng = np.random.default_rng(2)
    b = a.assign(model="b")
    for v in taxonomy.ids:
        column, shift = prob_column(v), 0.2 if v == value_id else 0.0
        b[column] = (b[column] + rng.normal(0, 0.05, len(b)) + shift).astype("float32")
    return pd.concat([a, b], ignore_index=True)


def test_a_shift_on_one_value_is_significant_and_the_others_not(taxonomy, make_scores):
    shifted = taxonomy.ids[1]
    table = compare(shifted_pair(taxonomy, make_scores, shifted), taxonomy, "b", "a")
    assert tuple(table.columns) == COMPARE_COLUMNS
    values = table[table["scope"] == "value"].set_index("key")
    assert list(values.index) == list(taxonomy.ids)
    assert values["significant"].to_dict() == {v: v == shifted for v in taxonomy.ids}
    assert values.at[shifted, "diff"] == pytest.approx(0.2, abs=0.02)
    assert values.at[shifted, "lo"] < values.at[shifted, "diff"] < values.at[shifted, "hi"]
    assert (values["p_holm"] >= values["p_value"]).all()
    np.testing.assert_allclose(values["p_holm"], holm(values["p_value"]))
    assert values["diff"].to_numpy() == pytest.approx((values["mean_a"] - values["mean_b"]).to_numpy())
    groups = table[table["scope"] == "group"].set_index("key")
    assert list(groups.index) == list(taxonomy.groups)
    home = taxonomy.get(shifted).group
    assert groups.at[home, "diff"] == pytest.approx(0.2 / len(taxonomy.members(home)), abs=0.02)
    overall = table[table["scope"] == "overall"].iloc[0]
    assert overall["key"] == "all" and overall["diff"] == pytest.approx(0.2 / len(taxonomy.ids), abs=0.02)
    assert (table["n_prompts"] == 60).all()


def test_identical_models_differ_nowhere(toy, make_scores):
    a = make_scores(toy, {"a": 0.0}, n_prompts=10)
    table = compare(pd.concat([a, a.assign(model="b")]), toy, "a", "b", n_boot=100)
    assert (table["diff"] == 0).all() and (table["p_value"] == 1).all() and not table["significant"].any()


def test_only_the_prompts_both_answered_are_paired(toy, make_scores):
    scores = make_scores(toy, {"a": 0.0, "b": 0.1, "c": 0.0}, n_prompts=12, skip={"b": 2, "c": 6})
    table = compare(scores, toy, "a", "b", n_boot=50)
    assert (table["n_prompts"] == 10).all()  # c's missing prompts do not matter here


def test_unknown_or_repeated_models_are_refused(toy, make_scores):
    scores = make_scores(toy, {"a": 0.0, "b": 0.0}, n_prompts=4)
    with pytest.raises(LeaderboardError, match=re.escape("unknown model(s) 'gpt-5'; the scores hold: a, b")):
        compare(scores, toy, "a", "gpt-5")
    with pytest.raises(LeaderboardError, match="two different models"):
        compare(scores, toy, "a", "a")


def test_text_table_names_the_models(toy, make_scores):
    table = compare(shifted_pair(toy, make_scores, "kindness", n_prompts=30), toy, "b", "a", n_boot=500)
    text = format_compare(table)
    assert text.startswith("a = b, b = a: paired over 30 common prompts")
    kindness = next(line for line in text.splitlines() if line.startswith("value    kindness"))
    assert kindness.endswith("*") and "+0.2" in kindness
    assert len(text.splitlines()) == 2 + len(toy.ids) + len(toy.groups) + 1
