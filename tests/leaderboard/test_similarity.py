"""Profile similarity: Spearman's rho of each model's per-value scores with each profile's weights
(ties averaged) or a reference vector; references refused naming the file and key; the table
written beside the leaderboard, printed by `leaderboard --reference` and shown in the report."""

import json
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from valuecsv_ray.audit.schema import prob_column
from valuecsv_ray.cli.leaderboard import leaderboard_cmd
from valuecsv_ray.leaderboard import LeaderboardError, load_profile, presets
from valuecsv_ray.leaderboard.report import leaderboard_section
from valuecsv_ray.leaderboard.similarity import (
    SIMILARITY_FILES,
    SIMILARITY_SCHEMA,
    format_similarity,
    load_reference,
    load_similarity,
    similarity,
    write_similarity,
)


def fixed_scores(taxonomy, vectors: dict[str, list[float]], n_prompts: int = 3) -> pd.DataFrame:
    """Every prompt answered with the same P per value: the model's s_d are exactly `vectors[model]`."""
    rows = [{"model": model, "prompt": f"q{q}", **{prob_column(v): p for v, p in zip(taxonomy.ids, probs,
                                                                                      strict=True)}}
            for model, probs in vectors.items() for q in range(n_prompts)]
    return pd.DataFrame(rows)


def spearman_by_hand(x, y) -> float:
    """Pearson's r of the average ranks: Spearman's rho with ties handled."""
    rx, ry = pd.Series(x).rank(method="average"), pd.Series(y).rank(method="average")
    return float(np.corrcoef(rx, ry)[0, 1])


def test_rho_is_plus_one_for_the_profiles_order_and_minus_one_reversed(tax, tmp_path):
    n = len(tax.ids)
    up = list(np.linspace(0.1, 0.9, n))
    scores = fixed_scores(tax, {"up": up, "down": up[::-1]})
    ladder = tmp_path / "ladder.yaml"
    ladder.write_text(yaml.safe_dump({"name": "ladder", "values": {v: i + 1 for i, v in enumerate(tax.ids)}}))
    table = similarity(scores, tax, [load_profile(str(ladder), tax)])
    assert table.set_index("model")["rho"].to_dict() == pytest.approx({"up": 1.0, "down": -1.0})
    assert (table["kind"] == "profile").all() and (table["n_values"] == n).all()
    assert (table["n_prompts"] == 3).all() and (table["p_value"] < 1e-6).all()


def test_ties_in_the_weights_take_their_average_rank(taxonomy, make_scores):
    scores = make_scores(taxonomy, {"a": 0.1, "b": 0.0, "c": -0.1}, n_prompts=25)
    profiles = list(presets(taxonomy).values())
    table = similarity(scores, taxonomy, profiles)
    assert "uniform" not in set(table["against"])  # every weight equal: no ranking to correlate with
    means = scores.groupby(["model", "prompt"])[[prob_column(v) for v in taxonomy.ids]].mean()
    for row in table.itertuples():
        profile = next(p for p in profiles if p.name == row.against)
        s_d = means.loc[row.model].mean().to_numpy()
        assert row.rho == pytest.approx(spearman_by_hand(s_d, profile.vector(taxonomy)), abs=1e-12)
    assert len(table) == 3 * (len(profiles) - 1)


def test_a_reference_vector_from_yaml_or_json(tax, tmp_path):
    up = list(np.linspace(0.1, 0.9, len(tax.ids)))
    scores = fixed_scores(tax, {"up": up, "flat": [0.5] * len(tax.ids)})
    ref = tmp_path / "culture.json"
    ref.write_text(json.dumps({v: -i for i, v in enumerate(tax.ids)}), encoding="utf-8")
    reference = load_reference(ref, tax)
    assert reference.name == "culture" and reference.source == str(ref)
    table = similarity(scores, tax, [load_profile("uniform", tax)], [reference]).set_index("model")
    assert table.loc["up", "rho"] == pytest.approx(-1.0) and table.loc["up", "kind"] == "reference"
    assert np.isnan(table.loc["flat", "rho"])  # a model that ranks no value above another
    text = format_similarity(table.reset_index())
    assert "culture (ref)" in text and "-1.00" in text and "—" in text


@pytest.mark.parametrize("record, message", [
    ({"courage": 1, "patience": 2}, "value 'kindness' is missing"),
    ({"courage": 1, "patience": 2, "kindness": 3, "bravery": 4},
     "unknown value 'bravery'; known values: courage, patience, kindness"),
    ({"courage": 1, "patience": "high", "kindness": 3}, "patience: 'high' is not a finite number"),
    ({"courage": 1, "patience": True, "kindness": 3}, "patience: True is not a finite number"),
    ({"courage": 2, "patience": 2, "kindness": 2}, "every value has the same number"),
    ([1, 2, 3], "expected a mapping of value id: number"),
])
def test_a_bad_reference_is_refused_naming_the_file_and_key(tmp_path, toy, record, message):
    path = tmp_path / "ref.yaml"
    path.write_text(yaml.safe_dump(record), encoding="utf-8")
    with pytest.raises(LeaderboardError, match=re.escape(message)) as caught:
        load_reference(path, toy)
    assert str(caught.value).startswith(str(path))


def test_written_with_its_schema_beside_the_leaderboard(toy, make_scores, tmp_path):
    table = similarity(make_scores(toy, {"a": 0.1, "b": -0.1}), toy, list(presets(toy).values()))
    paths = write_similarity(table, tmp_path)
    assert set(paths) == set(SIMILARITY_FILES)
    assert pq.read_schema(paths["parquet"]) == SIMILARITY_SCHEMA
    pd.testing.assert_frame_equal(load_similarity(tmp_path), table)
    assert pd.read_csv(paths["csv"]).columns.tolist() == SIMILARITY_SCHEMA.names
    assert load_similarity(tmp_path / "elsewhere") is None


def test_leaderboard_prints_and_writes_it_and_the_report_shows_it(eval_dir, tax, tmp_path):
    ref = tmp_path / "culture.yaml"
    ref.write_text(yaml.safe_dump({v: i for i, v in enumerate(tax.ids)}), encoding="utf-8")
    args = ["--profile", "uniform", "--profile", "rule-of-law-first", "--reference", ref, "--n-boot", 50]
    result = CliRunner().invoke(leaderboard_cmd, [str(a) for a in (eval_dir, *args)])
    assert result.exit_code == 0, result.output
    assert "profile similarity: Spearman's rho of each model's per-value scores (26 common prompts)" in (
        result.output)
    header = next(line for line in result.output.splitlines() if line.startswith("model "))
    assert header.split() == ["model", "rule-of-law-first", "culture", "(ref)"]
    table = load_similarity(eval_dir / "leaderboard")
    assert set(table["against"]) == {"rule-of-law-first", "culture"} and len(table) == 6
    assert "similarity.parquet, similarity.csv" in result.output
    blocks, _ = leaderboard_section(eval_dir / "leaderboard", tmp_path, tax)
    assert ("h3", "Profile similarity") in blocks
    shown = next(b for b in blocks if b[0] == "table" and b[1][0] == "model")
    assert shown[1] == ["model", "rule-of-law-first", "culture (ref)"] and len(shown[2]) == 3


def test_leaderboard_refuses_a_reference_with_a_missing_value(eval_dir, tax, tmp_path):
    ref = tmp_path / "short.yaml"
    ref.write_text(yaml.safe_dump({v: 1 + i for i, v in enumerate(tax.ids[1:])}), encoding="utf-8")
    result = CliRunner().invoke(leaderboard_cmd, [str(eval_dir), "--reference", str(ref)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {ref}: invalid reference vector")
    assert f"value {tax.ids[0]!r} is missing" in result.stderr
