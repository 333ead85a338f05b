"""The statistics pass over the default taxonomy: checked against a plain-pandas recomputation,
the common-prompt rule, the files it writes (Parquet readable by DuckDB, the taxonomy beside it),
and its error messages. tests/audit/test_other_taxonomy.py runs it on another taxonomy."""

import json
import math
import re
import subprocess
import sys
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from valuecsv_ray.audit.schema import STATS_SCHEMA, label_columns, prob_columns, score_schema
from valuecsv_ray.audit.statistics import wilson_interval
from valuecsv_ray.audit.stats import (
    StatsError,
    compute_stats,
    load_stats,
    read_scores,
    stats_pass,
    write_stats,
)
from valuecsv_ray.taxonomy import load_taxonomy

TAX = load_taxonomy()
PROB_COLUMNS, LABEL_COLUMNS = prob_columns(TAX), label_columns(TAX)
MODELS = ("gamma", "alpha", "beta")  # deliberately unsorted
N_PROMPTS = 20
GAMMA_SKIPS = {"q17", "q18", "q19"}  # prompts gamma never answered
STAT_COLUMNS = ["n", "mean", "mean_lo", "mean_hi", "std", "p10", "p50", "p90", "pos_rate", "pos_lo", "pos_hi"]


def make_scores(seed: int = 0) -> pd.DataFrame:
    """Three models; beta answers some prompts several times, gamma skips three prompts."""
    rng = np.random.default_rng(seed)
    records = []
    for model in MODELS:
        for q in range(N_PROMPTS):
            prompt = f"q{q}"
            if model == "gamma" and prompt in GAMMA_SKIPS:
                continue
            for _ in range(1 + (model == "beta") * (q % 3)):
                records.append({"model": model, "prompt": prompt})
    scores = pd.DataFrame(records)
    probs = rng.beta(0.7, 1.5, size=(len(scores), len(PROB_COLUMNS))).astype(np.float32)
    for i, (p, y) in enumerate(zip(PROB_COLUMNS, LABEL_COLUMNS, strict=True)):
        scores[p] = probs[:, i]
        scores[y] = probs[:, i] >= 0.6
    return scores


def wilson_reference(k: int, n: int, z: float = NormalDist().inv_cdf(0.975)) -> tuple[float, float]:
    """The closed form (2k + z^2 -+ z sqrt(z^2 + 4k(1 - k/n))) / (2(n + z^2)), z the 97.5% normal quantile."""
    root = z * math.sqrt(z * z + 4 * k * (1 - k / n))
    return (2 * k + z * z - root) / (2 * (n + z * z)), (2 * k + z * z + root) / (2 * (n + z * z))


def reference_stats(rows: pd.DataFrame, score: pd.Series, positive: pd.Series, scope: str, key: str):
    """Plain pandas groupby of one per-row score and label, in STATS_SCHEMA columns."""
    frame = pd.DataFrame({"model": rows["model"], "s": score.astype("float64"), "y": positive.astype(bool)})
    g = frame.groupby("model")
    out = pd.DataFrame({
        "n": g["s"].count(), "mean": g["s"].mean(), "std": g["s"].std(ddof=1).fillna(0.0),
        "p10": g["s"].quantile(0.1), "p50": g["s"].quantile(0.5), "p90": g["s"].quantile(0.9),
        "pos_rate": g["y"].mean(), "k": g["y"].sum(),
    })
    out["mean_lo"] = out["mean"] - 1.96 * out["std"] / np.sqrt(out["n"])
    out["mean_hi"] = out["mean"] + 1.96 * out["std"] / np.sqrt(out["n"])
    bounds = [wilson_reference(int(k), int(n)) for k, n in zip(out["k"], out["n"], strict=True)]
    out["pos_lo"], out["pos_hi"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return out.assign(scope=scope, key=key).reset_index()


def reference_all(rows: pd.DataFrame) -> pd.DataFrame:
    parts = [reference_stats(rows, rows[f"p_{v}"], rows[f"y_{v}"], "value", v) for v in TAX.ids]
    for group in TAX.groups:
        ids = [label.id for label in TAX.members(group)]
        score = rows[[f"p_{v}" for v in ids]].astype("float64").mean(axis=1)
        positive = rows[[f"y_{v}" for v in ids]].any(axis=1)
        parts.append(reference_stats(rows, score, positive, "group", group))
    score = rows[list(PROB_COLUMNS)].astype("float64").mean(axis=1)
    parts.append(reference_stats(rows, score, rows[list(LABEL_COLUMNS)].any(axis=1), "overall", "all"))
    return pd.concat(parts, ignore_index=True)


def assert_matches_reference(stats: pd.DataFrame, rows: pd.DataFrame) -> None:
    expected = reference_all(rows)
    merged = stats.merge(expected, on=["model", "scope", "key"], suffixes=("", "_ref"), validate="1:1")
    assert len(merged) == len(stats) == len(expected)
    for col in STAT_COLUMNS:
        np.testing.assert_allclose(merged[col], merged[f"{col}_ref"], rtol=1e-9, atol=1e-12, err_msg=col)


def common_rows(scores: pd.DataFrame) -> pd.DataFrame:
    answered = scores.groupby("prompt")["model"].nunique()
    return scores[scores["prompt"].isin(answered[answered == scores["model"].nunique()].index)]


def test_stats_equal_a_plain_pandas_recomputation_on_common_prompts():
    scores = make_scores()
    stats, _ = compute_stats(scores, TAX)
    assert list(stats.columns) == STATS_SCHEMA.names
    assert_matches_reference(stats, common_rows(scores))
    assert (stats["mean_lo"] <= stats["mean"]).all() and (stats["mean"] <= stats["mean_hi"]).all()
    assert ((stats["pos_lo"] >= 0) & (stats["pos_lo"] <= stats["pos_rate"]) & (stats["pos_hi"] <= 1)).all()


def test_stats_over_all_rows_when_restriction_is_off():
    scores = make_scores(seed=1)
    stats, coverage = compute_stats(scores, TAX, common_prompts=False)
    assert_matches_reference(stats, scores)
    assert coverage["restricted"] is False and "common_prompts=False" in coverage["reason"]
    assert coverage["common_prompts"] == N_PROMPTS - len(GAMMA_SKIPS)  # still reported


def test_rows_come_in_a_fixed_order():
    stats, _ = compute_stats(make_scores().sample(frac=1.0, random_state=3), TAX)
    keys = [*TAX.ids, *TAX.groups, "all"]
    scopes = ["value"] * len(TAX.ids) + ["group"] * len(TAX.groups) + ["overall"]
    expected = [(m, s, k) for m in sorted(MODELS) for s, k in zip(scopes, keys, strict=True)]
    assert list(stats[["model", "scope", "key"]].itertuples(index=False, name=None)) == expected
    assert stats["n"].dtype == np.int64


def test_a_model_missing_prompts_restricts_every_model_and_coverage_says_so():
    scores = make_scores()
    stats, coverage = compute_stats(scores, TAX)
    rows, used = scores.groupby("model").size(), common_rows(scores).groupby("model").size()
    common = N_PROMPTS - len(GAMMA_SKIPS)
    assert coverage == {
        "models": {m: {"rows": int(rows[m]), "prompts": N_PROMPTS - len(GAMMA_SKIPS) * (m == "gamma"),
                       "rows_used": int(used[m])} for m in sorted(MODELS)},
        "rows": len(scores), "rows_used": int(used.sum()), "prompts": N_PROMPTS,
        "common_prompts": common, "restricted": True,
        "reason": f"models are compared on the {common} prompts that every model answered",
    }
    overall = stats[stats["scope"] == "overall"].set_index("model")["n"]
    assert overall["alpha"] == common < rows["alpha"]  # alpha lost the prompts gamma skipped
    assert overall["beta"] == used["beta"] < rows["beta"]
    assert overall["gamma"] == rows["gamma"]


def test_no_restriction_with_one_model():
    scores = make_scores()
    beta = scores[scores["model"] == "beta"]
    stats, coverage = compute_stats(beta, TAX)
    assert coverage["restricted"] is False and "only one model" in coverage["reason"]
    assert coverage["rows_used"] == len(beta) and set(stats["model"]) == {"beta"}
    assert_matches_reference(stats, beta)


@pytest.mark.parametrize("how", ["null", "absent"])
def test_no_restriction_without_prompts(how):
    scores = make_scores()
    if how == "null":
        scores.loc[scores.index[::7], "prompt"] = None
    else:
        scores = scores.drop(columns="prompt")
    stats, coverage = compute_stats(scores, TAX)
    assert coverage["restricted"] is False and coverage["common_prompts"] is None
    assert ("rows have no prompt" if how == "null" else "no prompt column") in coverage["reason"]
    assert coverage["rows_used"] == len(scores)
    assert_matches_reference(stats, scores)


def test_no_common_prompt_is_an_error_that_suggests_the_way_out():
    scores = make_scores()
    scores.loc[scores["model"] == "alpha", "prompt"] = "only-alpha"
    with pytest.raises(StatsError, match="no prompt was answered by every model.*common_prompts=False"):
        compute_stats(scores, TAX)


def test_single_row_group_has_a_degenerate_ci():
    row = make_scores().iloc[[0]]
    stats, _ = compute_stats(row, TAX)
    assert (stats["n"] == 1).all() and (stats["std"] == 0.0).all()
    assert (stats["mean_lo"] == stats["mean"]).all() and (stats["mean_hi"] == stats["mean"]).all()
    assert (stats["p10"] == stats["mean"]).all() and (stats["p90"] == stats["mean"]).all()


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 30), (7, 30), (30, 30), (1, 1000)])
def test_wilson_interval_matches_the_closed_form(k, n):
    lo, hi = wilson_interval(k, n)
    ref_lo, ref_hi = wilson_reference(k, n)
    assert lo == pytest.approx(max(ref_lo, 0.0), abs=1e-12)
    assert hi == pytest.approx(min(ref_hi, 1.0), abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def score_table(scores: pd.DataFrame) -> pa.Table:
    """The synthetic rows as the audit writes them: every column of the scores table."""
    full = scores.reset_index(drop=True).assign(
        row_id=lambda d: [f"synthetic:{i}" for i in range(len(d))], source="synthetic.jsonl",
        position=lambda d: np.arange(len(d), dtype=np.int64), text_chars=np.int32(100),
        windows=np.int16(1), registry_id="reg-test",
    )
    schema = score_schema(TAX)
    return pa.Table.from_pandas(full[schema.names], schema=schema, preserve_index=False)


def test_read_scores_reads_only_the_needed_columns_from_several_files(tmp_path):
    scores = make_scores()
    table = score_table(scores)
    (tmp_path / "scores").mkdir()
    pq.write_table(table.slice(0, 25), tmp_path / "scores" / "part-0.parquet")
    pq.write_table(table.slice(25), tmp_path / "scores" / "part-1.parquet")
    read = read_scores(tmp_path / "scores", TAX)
    assert set(read.columns) == {"model", "prompt", *PROB_COLUMNS, *LABEL_COLUMNS}
    assert len(read) == len(scores)
    pd.testing.assert_frame_equal(compute_stats(read, TAX)[0], compute_stats(scores, TAX)[0])


def test_write_then_load_round_trips_and_duckdb_reads_the_parquet(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    stats, coverage = compute_stats(make_scores(), TAX)
    paths = write_stats(stats, coverage, TAX, tmp_path / "stats")
    assert sorted(p.name for p in paths.values()) == [
        "coverage.json", "stats.csv", "stats.parquet", "taxonomy.json"]
    loaded, loaded_coverage, loaded_taxonomy = load_stats(tmp_path / "stats")
    pd.testing.assert_frame_equal(loaded, stats)
    assert loaded_coverage == coverage
    assert loaded_taxonomy == TAX
    assert pq.read_schema(paths["parquet"]).equals(STATS_SCHEMA)
    assert len(pd.read_csv(paths["csv"])) == len(stats)
    relation = duckdb.sql(f"select * from '{paths['parquet']}'")
    duck_types = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE"}
    assert relation.columns == STATS_SCHEMA.names
    assert [str(t) for t in relation.types] == [duck_types[f.type] for f in STATS_SCHEMA]
    assert len(relation.fetchall()) == len(stats)


def test_stats_pass_reads_computes_and_writes(tmp_path):
    (tmp_path / "scores").mkdir()
    pq.write_table(score_table(make_scores()), tmp_path / "scores" / "part-0.parquet")
    stats, coverage = stats_pass(tmp_path / "scores", tmp_path / "stats", TAX)
    loaded, loaded_coverage, taxonomy = load_stats(tmp_path / "stats")
    pd.testing.assert_frame_equal(loaded, stats)
    assert coverage["restricted"] is True and loaded_coverage == coverage and taxonomy == TAX
    assert_matches_reference(stats, common_rows(make_scores()))


def test_missing_columns_are_named():
    scores = make_scores().drop(columns=["p_freedom", "y_justice"])
    with pytest.raises(StatsError, match="missing column.*p_freedom, y_justice"):
        compute_stats(scores, TAX)


def test_empty_input_and_nulls_are_refused():
    with pytest.raises(StatsError, match="no rows"):
        compute_stats(make_scores().iloc[0:0], TAX)
    scores = make_scores()
    scores.loc[scores.index[:2], "p_harmony"] = np.nan
    with pytest.raises(StatsError, match=r"p_harmony \(2 rows\)"):
        compute_stats(scores, TAX)


def test_read_scores_errors_name_the_folder(tmp_path):
    with pytest.raises(StatsError, match="not a folder"):
        read_scores(tmp_path / "nope", TAX)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StatsError, match=re.escape(f"{empty}: no Parquet files")):
        read_scores(empty, TAX)
    partial = tmp_path / "partial"
    partial.mkdir()
    pq.write_table(score_table(make_scores()).drop_columns(["p_civility"]), partial / "part-0.parquet")
    with pytest.raises(StatsError, match=re.escape(f"{partial}: missing column(s) p_civility")):
        read_scores(partial, TAX)


def test_load_stats_names_what_is_missing(tmp_path):
    missing = "missing stats.parquet, coverage.json, taxonomy.json"
    with pytest.raises(StatsError, match=re.escape(f"{tmp_path}: {missing}")):
        load_stats(tmp_path)
    stats, coverage = compute_stats(make_scores(), TAX)
    write_stats(stats, coverage, TAX, tmp_path / "stats")
    (tmp_path / "stats" / "taxonomy.json").unlink()  # e.g. stats written before taxonomies were recorded
    with pytest.raises(StatsError, match=re.escape(f"{tmp_path / 'stats'}: missing taxonomy.json;")):
        load_stats(tmp_path / "stats")


def test_stats_and_taxonomy_that_disagree_are_refused(tmp_path):
    stats, coverage = compute_stats(make_scores(), TAX)
    national = TAX.subset([label.id for label in TAX.members(TAX.groups[0])])
    with pytest.raises(StatsError, match=f"value rows .* are not those of taxonomy {TAX.name!r}"):
        write_stats(stats, coverage, national, tmp_path / "stats")
    write_stats(stats, coverage, TAX, tmp_path / "stats")
    (tmp_path / "stats" / "taxonomy.json").write_text(json.dumps(national.to_dict()), encoding="utf-8")
    with pytest.raises(StatsError, match="stats.parquet: the value rows"):
        load_stats(tmp_path / "stats")
    (tmp_path / "stats" / "taxonomy.json").write_text('{"name": "x"}', encoding="utf-8")
    with pytest.raises(StatsError, match=r"(?s)taxonomy.json: not a taxonomy .*missing key 'groups'"):
        load_stats(tmp_path / "stats")


def test_write_stats_refuses_a_table_that_is_not_the_schema(tmp_path):
    stats, coverage = compute_stats(make_scores(), TAX)
    with pytest.raises(StatsError, match="differ from STATS_SCHEMA"):
        write_stats(stats.drop(columns="p90"), coverage, TAX, tmp_path)


def test_stats_and_report_import_neither_torch_nor_ray_nor_matplotlib():
    code = ("import sys, valuecsv_ray.audit.stats, valuecsv_ray.audit.report; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'matplotlib'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
