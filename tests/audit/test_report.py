"""The report on the default taxonomy: images that are real PNGs, Markdown and HTML with the
coverage statement and tables, model names escaped, and no missing-glyph warnings whatever fonts
the machine has. tests/audit/test_other_taxonomy.py reports on another taxonomy."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from valuecsv_ray.audit.report import coverage_statement, model_value_table, write_report
from valuecsv_ray.audit.schema import label_columns, prob_columns
from valuecsv_ray.audit.stats import StatsError, compute_stats, write_stats
from valuecsv_ray.taxonomy import load_taxonomy

MODELS = ("qwen-7b", "<gpt&4>", "通义千问")  # an HTML-hostile name and one in Chinese
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TAX = load_taxonomy()
PROB_COLUMNS, LABEL_COLUMNS = prob_columns(TAX), label_columns(TAX)


def make_scores(seed: int = 0) -> pd.DataFrame:
    """Each model answers 12 prompts twice; 通义千问 skips the last two prompts."""
    rng = np.random.default_rng(seed)
    records = [{"model": m, "prompt": f"q{q}"} for m in MODELS for q in range(12) for _ in range(2)
               if not (m == "通义千问" and q >= 10)]
    scores = pd.DataFrame(records)
    probs = rng.uniform(size=(len(scores), len(PROB_COLUMNS)))
    probs[scores["model"] == "qwen-7b"] *= 0.5  # a distinct profile
    for i, (p, y) in enumerate(zip(PROB_COLUMNS, LABEL_COLUMNS, strict=True)):
        scores[p], scores[y] = probs[:, i], probs[:, i] >= 0.5
    return scores


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Stats and a report written once for the module (matplotlib is the slow part)."""
    stats_dir = tmp_path_factory.mktemp("stats")
    stats, coverage = compute_stats(make_scores(), TAX)
    write_stats(stats, coverage, TAX, stats_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_report(stats_dir)
    return {"dir": stats_dir, "stats": stats, "coverage": coverage, "paths": paths, "warnings": caught}


def test_all_files_are_written_into_the_stats_folder(report):
    paths = report["paths"]
    assert {k: p.name for k, p in paths.items()} == {
        "heatmap": "heatmap.png", "profiles": "profiles.png", "markdown": "report.md", "html": "report.html"}
    assert all(p.parent == report["dir"] and p.stat().st_size > 0 for p in paths.values())


@pytest.mark.parametrize("key", ["heatmap", "profiles"])
def test_images_are_real_pngs(report, key):
    from matplotlib.image import imread

    path = report["paths"][key]
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_no_missing_glyph_or_other_user_warnings(report):
    messages = [str(w.message) for w in report["warnings"] if issubclass(w.category, UserWarning)]
    assert messages == []


def test_markdown_has_the_coverage_statement_tables_and_images(report):
    md = report["paths"]["markdown"].read_text(encoding="utf-8")
    coverage = report["coverage"]
    assert coverage["restricted"] and coverage["common_prompts"] == 10
    statement = coverage_statement(coverage)
    assert "Restricted to common prompts" in statement and "10 prompts that every model answered" in statement
    assert statement.replace("<", "\\<") in md
    for model in ("qwen-7b", "通义千问", "\\<gpt&4>"):
        assert model in md
    assert "](heatmap.png)" in md and "](profiles.png)" in md
    header = next(line for line in md.splitlines() if line.startswith("| model | Prosperity"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [f"{v.en} {v.zh}" for v in TAX.labels]
    table = model_value_table(report["stats"], TAX)
    qwen_row = next(line for line in md.splitlines() if line.startswith("| qwen-7b | 0."))
    assert qwen_row == "| qwen-7b | " + " | ".join(f"{x:.3f}" for x in table.loc["qwen-7b"]) + " |"
    assert md.startswith(f"# {TAX.title} audit\n")
    assert f"## Per {TAX.group_kind}: mean probability" in md
    assert f"## Overall: all {len(TAX.labels)} values" in md
    assert f"| model | {' | '.join(TAX.groups)} |" in md
    r = report["stats"].query("scope == 'overall' and model == 'qwen-7b'").iloc[0]
    assert f"| qwen-7b | {r.n} | {r['mean']:.3f} [{r.mean_lo:.3f}, {r.mean_hi:.3f}]" in md


def test_html_escapes_model_names(report):
    page = report["paths"]["html"].read_text(encoding="utf-8")
    assert "&lt;gpt&amp;4&gt;" in page and "<gpt&4>" not in page
    assert "通义千问" in page and '<img src="heatmap.png"' in page and '<img src="profiles.png"' in page
    assert page.count("<table>") == 4 and page.count("</table>") == 4


def test_model_value_table_is_models_by_values(report):
    stats = report["stats"]
    table = model_value_table(stats, TAX)
    assert list(table.columns) == list(TAX.ids)
    assert list(table.index) == sorted(MODELS)
    values = stats[stats["scope"] == "value"]
    for row in values.itertuples():
        assert table.at[row.model, row.key] == row.mean
    assert (table.loc["qwen-7b"] < table.loc["<gpt&4>"]).all()  # the halved probabilities show


def test_report_into_another_folder_and_unrestricted_statement(tmp_path):
    scores = make_scores(seed=1)
    stats, coverage = compute_stats(scores[scores["model"] == "qwen-7b"], TAX)
    write_stats(stats, coverage, TAX, tmp_path / "stats")
    paths = write_report(tmp_path / "stats", tmp_path / "report")
    assert all(p.parent == tmp_path / "report" and p.is_file() for p in paths.values())
    md = paths["markdown"].read_text(encoding="utf-8")
    assert re.search(r"Not restricted to common prompts: there is only one model \(24 of 24 rows used\)", md)


def test_report_without_stats_names_the_folder(tmp_path):
    with pytest.raises(StatsError, match=re.escape(f"{tmp_path}: missing stats.parquet")):
        write_report(tmp_path)
