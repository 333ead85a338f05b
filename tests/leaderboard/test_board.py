"""The leaderboard: scores equal an independent pandas recomputation, intervals behave, folders
resolve, files round-trip."""

import json
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from valuecsv_ray.audit.schema import prob_columns
from valuecsv_ray.leaderboard.board import (
    LEADERBOARD_SCHEMA,
    format_leaderboard,
    leaderboard,
    load_leaderboard,
    locate_audit,
    read_audit_scores,
    write_leaderboard,
)
from valuecsv_ray.leaderboard.profiles import LeaderboardError, load_profile, presets

MODELS = {"m-high": 0.1, "m-mid": 0.0, "m-low": -0.1}


def expected_scores(scores: pd.DataFrame, columns: list[str], weights: np.ndarray) -> pd.Series:
    """Per model: prompt means -> prompts all models answered -> mean -> weighted sum, on 0-100."""
    per_prompt = scores.groupby(["model", "prompt"])[columns].mean().reset_index()
    prompt_sets = per_prompt.groupby("model")["prompt"].apply(set)
    common = set.intersection(*prompt_sets)
    s = per_prompt[per_prompt["prompt"].isin(common)].groupby("model")[columns].mean()
    return 100 * (s * weights).sum(axis=1) / weights.sum()


def test_scores_equal_an_independent_recomputation(taxonomy, make_scores, tmp_path):
    scores = make_scores(taxonomy, MODELS, n_prompts=25, samples=3, skip={"m-low": 5})
    scores = scores.drop(index=[0, 1])  # m-high answers its first prompt once, not three times
    uneven = {label.id: float(i % 3) for i, label in enumerate(taxonomy.labels)}
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"name": "uneven", "default": 0, "values": uneven}), encoding="utf-8")
    profiles = [load_profile("uniform", taxonomy), load_profile(str(path), taxonomy),
                load_profile(taxonomy.groups[-1], taxonomy)]
    board = leaderboard(scores, taxonomy, profiles, n_boot=200)
    assert list(board.columns) == LEADERBOARD_SCHEMA.names
    assert list(dict.fromkeys(board["profile"])) == ["uniform", "uneven", taxonomy.groups[-1]]
    assert (board["n_prompts"] == 20).all()
    for profile in profiles:
        part = board[board["profile"] == profile.name].set_index("model")
        want = expected_scores(scores, list(prob_columns(taxonomy)), profile.vector(taxonomy))
        pd.testing.assert_series_equal(part["score"].sort_index(), want.sort_index(), check_names=False)
        assert part["rank"].tolist() == [1, 2, 3]
        assert list(part.index) == list(want.sort_values(ascending=False).index)
    assert board.attrs["profiles"][1]["weights"] == uneven


def test_intervals_contain_the_score_and_shrink_with_more_prompts(taxonomy, make_scores):
    widths = {}
    for n_prompts in (20, 500):
        scores = make_scores(taxonomy, MODELS, n_prompts=n_prompts, samples=1, seed=n_prompts)
        board = leaderboard(scores, taxonomy, list(presets(taxonomy).values()), n_boot=500)
        assert ((board["lo"] <= board["score"]) & (board["score"] <= board["hi"])).all()
        assert (board["lo"] < board["hi"]).all()
        widths[n_prompts] = (board["hi"] - board["lo"]).to_numpy()
    assert (widths[500] < 0.5 * widths[20]).all()  # about sqrt(25) = 5 times narrower


def test_bootstrap_is_seeded_and_shared_across_models(tax, make_scores):
    scores = make_scores(tax, MODELS, n_prompts=40)
    uniform = [load_profile("uniform", tax)]
    first, again = (leaderboard(scores, tax, uniform, n_boot=300, seed=7) for _ in range(2))
    pd.testing.assert_frame_equal(first, again)
    other = leaderboard(scores, tax, uniform, n_boot=300, seed=8)
    assert not np.allclose(first["lo"], other["lo"])
    shifted = scores.copy()  # the same answers under two names: identical intervals only if resamples match
    shifted["model"] = shifted["model"].replace({"m-low": "m-twin"})
    twin = pd.concat([scores[scores["model"] == "m-low"], shifted[shifted["model"] == "m-twin"]])
    board = leaderboard(twin, tax, uniform, n_boot=300).set_index("model")
    assert board.loc["m-low", ["lo", "hi"]].tolist() == board.loc["m-twin", ["lo", "hi"]].tolist()


def test_rows_without_prompt_are_refused(tax, make_scores):
    scores = make_scores(tax, MODELS, n_prompts=5)
    scores.loc[3, "prompt"] = None
    scores.attrs["source"] = "out/scores"
    with pytest.raises(LeaderboardError, match=re.escape("out/scores: null values in prompt (1 rows)")):
        leaderboard(scores, tax, [load_profile("uniform", tax)])
    with pytest.raises(LeaderboardError, match="missing column.s. prompt"):
        leaderboard(scores.drop(columns="prompt"), tax, [load_profile("uniform", tax)])


def test_no_common_prompt_and_no_profile_are_refused(toy, make_scores):
    scores = make_scores(toy, {"a": 0.0}, n_prompts=3)
    other = scores.assign(model="b", prompt=scores["prompt"] + "-other")
    with pytest.raises(LeaderboardError, match=r"no prompt was answered by every model \(a, b\)"):
        leaderboard(pd.concat([scores, other]), toy, [load_profile("uniform", toy)])
    with pytest.raises(LeaderboardError, match="no weight profile given"):
        leaderboard(scores, toy, [])


def test_audit_and_stats_folders_resolve_to_the_same_scores(eval_dir):
    audit = eval_dir / "audit"
    found = [read_audit_scores(p) for p in (audit, audit / "stats")]
    for scores, taxonomy, where in found:
        assert where.scores_dir == audit / "scores" and where.leaderboard_dir == audit / "leaderboard"
        assert scores.attrs["source"] == str(audit / "scores")
        assert list(scores.columns) == ["model", "prompt", *prob_columns(taxonomy)]
        assert len(scores) == len(found[0][0]) and taxonomy == found[0][1]


def test_a_folder_that_is_no_audit_lists_what_was_looked_for(tmp_path):
    with pytest.raises(LeaderboardError) as caught:
        locate_audit(tmp_path)
    text = str(caught.value)
    for looked in (tmp_path / "scores", tmp_path / "stats" / "taxonomy.json", tmp_path / "taxonomy.json"):
        assert str(looked) in text


def test_written_files_load_back(tmp_path, toy, make_scores):
    board = leaderboard(make_scores(toy, MODELS), toy, list(presets(toy).values()), n_boot=100, seed=3)
    paths = write_leaderboard(board, tmp_path / "lb")
    assert {p.name for p in paths.values()} == {"leaderboard.parquet", "leaderboard.csv", "profiles.json"}
    assert pq.read_schema(paths["parquet"]).equals(LEADERBOARD_SCHEMA)
    loaded, meta = load_leaderboard(tmp_path / "lb")
    pd.testing.assert_frame_equal(loaded, board, check_like=False)
    assert meta == json.loads(paths["profiles"].read_text(encoding="utf-8"))
    assert meta["n_boot"] == 100 and meta["seed"] == 3 and meta["taxonomy"] == toy.name
    assert meta["profiles"][1] == {"name": "inner", "description": presets(toy)["inner"].description,
                                   "source": "preset", "weights": {"courage": 1.0, "patience": 1.0,
                                                                   "kindness": 0.0}}
    assert len(pd.read_csv(paths["csv"])) == len(board)
    with pytest.raises(LeaderboardError, match="missing leaderboard.parquet, profiles.json"):
        load_leaderboard(tmp_path)


def test_text_table_lists_each_profile_ranked(toy, make_scores):
    board = leaderboard(make_scores(toy, MODELS), toy, list(presets(toy).values()), n_boot=50)
    text = format_leaderboard(board)
    assert text.count("common prompts)") == 3 and "profile inner (30 common prompts)" in text
    first = board.iloc[0]
    assert re.search(rf"^   1  m-high\s+{first.score:.2f}  \[{first.lo:.2f}, {first.hi:.2f}\]$", text, re.M)
