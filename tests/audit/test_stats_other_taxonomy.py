"""Statistics and report for a taxonomy that is not the default one: three values in two groups
of unequal size, with scores composed here so every group row can be checked by hand."""

import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from valuecsv_ray.audit import report
from valuecsv_ray.audit.report import model_value_table, write_report
from valuecsv_ray.audit.schema import label_column, prob_column
from valuecsv_ray.audit.stats import compute_stats, load_stats, write_stats
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy

TOY = Taxonomy.from_dict({
    "name": "toy-virtues", "title": "Toy Virtues", "group_kind": "pillar", "groups": ["inner", "outer"],
    "labels": [
        {"id": "courage", "en": "Courage", "zh": "勇气", "group": "inner", "column": "c"},
        {"id": "patience", "en": "Patience", "zh": "耐心", "group": "inner", "column": "p"},
        {"id": "kindness", "en": "Kindness", "zh": "仁慈", "group": "outer", "column": "k"},
    ],
})
# per model, per text: P(courage), P(patience), P(kindness); labelled positive at p >= 0.5
PROBS = {
    "m1": [[0.2, 0.6, 0.1], [0.4, 0.0, 0.8], [0.9, 0.3, 0.5]],
    "m2": [[0.1, 0.1, 0.1], [0.3, 0.1, 0.2]],
}
# what the rows above give, worked out by hand: (mean, pos_rate)
EXPECTED = {
    ("m1", "group", "inner"): (0.4, 2 / 3),  # text means 0.4, 0.2, 0.6; positives: patience, -, courage
    ("m1", "group", "outer"): (1.4 / 3, 2 / 3),  # kindness alone
    ("m1", "overall", "all"): ((0.9 + 1.2 + 1.7) / 9, 1.0),  # every text has some positive label
    ("m2", "group", "inner"): (0.15, 0.0),
    ("m2", "group", "outer"): (0.15, 0.0),
    ("m2", "overall", "all"): (0.9 / 6, 0.0),
}


def toy_scores() -> pd.DataFrame:
    rows = []
    for model, texts in PROBS.items():
        for i, probs in enumerate(texts):
            row = {"model": model, "prompt": f"q{i}"}
            for label, p in zip(TOY.labels, probs, strict=True):
                row |= {prob_column(label.id): np.float32(p), label_column(label.id): p >= 0.5}
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def toy_report(tmp_path_factory):
    stats_dir = tmp_path_factory.mktemp("toy") / "stats"
    stats, coverage = compute_stats(toy_scores(), TOY, common_prompts=False)
    write_stats(stats, coverage, TOY, stats_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_report(stats_dir)
    return {"dir": stats_dir, "stats": stats, "paths": paths, "warnings": caught}


def test_stats_have_a_row_per_value_group_and_overall_in_taxonomy_order(toy_report):
    stats = toy_report["stats"]
    keys = [("value", "courage"), ("value", "patience"), ("value", "kindness"),
            ("group", "inner"), ("group", "outer"), ("overall", "all")]
    assert list(stats[["model", "scope", "key"]].itertuples(index=False, name=None)) == [
        (m, scope, key) for m in ("m1", "m2") for scope, key in keys]
    assert stats.groupby("model")["n"].unique().map(list).to_dict() == {"m1": [3], "m2": [2]}


def test_group_rows_equal_the_hand_computed_values(toy_report):
    stats = toy_report["stats"].set_index(["model", "scope", "key"])
    for key, (mean, pos_rate) in EXPECTED.items():
        assert stats.loc[key, "mean"] == pytest.approx(mean, abs=1e-6), key
        assert stats.loc[key, "pos_rate"] == pytest.approx(pos_rate), key
    assert stats.loc[("m1", "group", "inner"), "p50"] == pytest.approx(0.4, abs=1e-6)
    outer, kindness = stats.loc[("m1", "group", "outer")], stats.loc[("m1", "value", "kindness")]
    pd.testing.assert_series_equal(outer, kindness, check_names=False)  # a one-value group is that value


def test_the_stats_folder_carries_the_taxonomy(toy_report):
    stats, _, taxonomy = load_stats(toy_report["dir"])
    assert taxonomy == TOY
    pd.testing.assert_frame_equal(stats, toy_report["stats"])
    assert list(model_value_table(stats, taxonomy).columns) == ["courage", "patience", "kindness"]


def test_report_speaks_of_the_taxonomys_values_and_groups(toy_report):
    md = toy_report["paths"]["markdown"].read_text(encoding="utf-8")
    page = toy_report["paths"]["html"].read_text(encoding="utf-8")
    assert md.startswith("# Toy Virtues audit\n") and "<title>Toy Virtues audit</title>" in page
    assert "| model | Courage 勇气 | Patience 耐心 | Kindness 仁慈 |" in md
    assert "## Per pillar: mean probability [95% CI]" in md and "| model | inner | outer |" in md
    assert "Values per pillar: inner: Courage, Patience; outer: Kindness." in md
    assert "## Overall: all 3 values" in md and "mean of its 3 probabilities" in md
    for text in (md, page):
        for default_only in ("twelve", "Twelve", "four", "Core Socialist", "level", "national", "Prosperity"):
            assert default_only not in text, default_only
    assert page.count("<table>") == 4


def test_report_figures_are_drawn_without_warnings(toy_report):
    from matplotlib.image import imread

    assert [str(w.message) for w in toy_report["warnings"] if issubclass(w.category, UserWarning)] == []
    for key in ("heatmap", "profiles"):
        image = imread(toy_report["paths"][key])
        assert image.ndim == 3 and image[..., :3].std() > 0.05, key


def test_group_boundaries_follow_the_taxonomy():
    assert report._group_runs(TOY) == ([1.5], ["inner", "outer"])
    default = load_taxonomy()
    sizes = [len(default.members(g)) for g in default.groups]
    assert report._group_runs(default) == (list(np.cumsum(sizes)[:-1] - 0.5), list(default.groups))


def test_report_cli_reads_the_taxonomy_from_the_stats_folder(toy_report, tmp_path):
    from valuecsv_ray.cli import main

    result = CliRunner().invoke(main, ["report", str(toy_report["dir"]), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "| model | Courage 勇气 | Patience 耐心 | Kindness 仁慈 |" in (tmp_path / "report.md").read_text(
        encoding="utf-8")
