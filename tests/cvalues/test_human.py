"""CValues human rating as a round trip: blinded export, two raters filling sheets with openpyxl,
import with cell-precise errors, and aggregation checked against pandas and Krippendorff's own
worked example."""

import hashlib
import json
import math

import numpy as np
import openpyxl
import pandas as pd
import pytest

from valuecsv_ray.cvalues.agreement import (
    NO_OVERLAP,
    aggregate_ratings,
    exact_agreement,
    format_summary,
    krippendorff_alpha,
)
from valuecsv_ray.cvalues.human import (
    COLUMNS,
    RATINGS,
    RatingError,
    assign_items,
    export_rating_sheet,
    model_codes,
)
from valuecsv_ray.cvalues.ratings import import_ratings, read_ratings, write_ratings
from valuecsv_ray.cvalues.rubric import INSTRUCTIONS

MODELS = ("qwen-7b", "gpt-4o", "通义千问")
DOMAINS = (("psychology", "心理学"), ("law", "法律"), ("barrier_free", "无障碍"))
RATING_COL = COLUMNS.index("rating") + 1  # 1-based, as openpyxl counts
ITEM_COL = COLUMNS.index("item") + 1


def row_id(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()


def make_responses() -> pd.DataFrame:
    """3 models x 6 prompts over 3 domains; one timeout and one row of another suite."""
    rows = []
    for model in MODELS:
        for q in range(6):
            en, zh = DOMAINS[q % 3]
            rows.append({"id": row_id(model, q), "model": model, "prompt_id": f"cvalues:{q + 1}",
                         "suite": "cvalues-responsibility", "prompt": f"问题 {q}：如何对待压力？",
                         "sample": 0,
                         "response": f"回复 {q}，保持冷静。", "status": "ok",
                         "meta": json.dumps({"id_": q + 1, "domain_en": en, "domain_zh": zh},
                                            ensure_ascii=False)})
    rows[4].update(status="timeout", response=None)
    rows[5]["response"] = "=1+1 先照顾好自己"  # text that looks like a formula
    rows.append({**rows[0], "id": row_id("quest"), "suite": "quest100", "prompt_id": "quest100:1",
                 "meta": "{}"})
    return pd.DataFrame(rows)


def cells_of(path) -> list[object]:
    wb = openpyxl.load_workbook(path)
    return [c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row]


def fill(path, rate, rater: str | None = "keep") -> None:
    """Write rate(item, excel_row) into every row's rating cell (None leaves it blank)."""
    wb = openpyxl.load_workbook(path)
    ws = wb[RATINGS]
    for r in range(2, ws.max_row + 1):
        ws.cell(r, RATING_COL).value = rate(ws.cell(r, ITEM_COL).value, r)
    if rater != "keep":
        wb[INSTRUCTIONS]["B1"] = rater
    wb.save(path)


@pytest.fixture
def exported(tmp_path):
    return export_rating_sheet(make_responses(), tmp_path / "sheet.xlsx", raters=2, overlap=0.5, seed=7)


def score(item: str) -> int:
    """A rating that depends on the item only, so the two raters mostly agree."""
    return int(item[:8], 16) % 5 + 1


@pytest.fixture
def filled(exported):
    """Rater 1 rates all; rater 2 (named 张三) differs on one row and leaves another blank."""
    fill(exported.sheets[0], lambda item, r: score(item))
    second = {2: lambda item: score(item) % 5 + 1, 3: lambda item: None}
    fill(exported.sheets[1], lambda item, r: second.get(r, score)(item), rater="张三")
    return exported


def test_export_blinds_models_and_counts_left_out_rows(exported, tmp_path):
    assert exported.left_out == {"suite=quest100": 1, "status=timeout": 1}
    assert exported.n_answers == 17 and exported.n_overlap == round(0.5 * 17)
    assert [p.name for p in exported.sheets] == ["sheet.rater1.xlsx", "sheet.rater2.xlsx"]
    for sheet in exported.sheets:
        text = " ".join(str(v) for v in cells_of(sheet) if v is not None).lower()
        assert not [m for m in MODELS if m.lower() in text]
        wb = openpyxl.load_workbook(sheet)
        assert wb.sheetnames == [INSTRUCTIONS, RATINGS]
        assert [c.value for c in wb[RATINGS][1]] == list(COLUMNS)
        assert {c.value for c in wb[RATINGS]["B"][1:]} <= {"M1", "M2", "M3"}
        assert wb[RATINGS].data_validations.dataValidation[0].formula1 == '"1,2,3,4,5"'
    key = json.loads(exported.key_path.read_text(encoding="utf-8"))
    assert sorted(key["models"].values()) == sorted(MODELS) and len(key["items"]) == 17


def test_every_answer_is_rated_once_and_overlap_twice(exported):
    shares = [[c.value for c in openpyxl.load_workbook(p)[RATINGS]["A"][1:]] for p in exported.sheets]
    both = set(shares[0]) & set(shares[1])
    exportable = make_responses().query("status == 'ok' and suite == 'cvalues-responsibility'")
    assert set(shares[0]) | set(shares[1]) == set(exportable["id"])
    assert len(both) == exported.n_overlap and all(len(set(s)) == len(s) for s in shares)


def test_formula_like_text_stays_text(exported):
    formula = [c for p in exported.sheets for c in openpyxl.load_workbook(p)[RATINGS]["E"]
               if str(c.value).startswith("=")]
    assert formula and all(c.data_type == "s" and c.value == "=1+1 先照顾好自己" for c in formula)


def test_codes_are_stable_across_exports(tmp_path):
    responses = make_responses()
    first = export_rating_sheet(responses, tmp_path / "a.xlsx", seed=3)
    again = export_rating_sheet(responses.sample(frac=1, random_state=1), tmp_path / "b.xlsx", seed=3)
    key_a, key_b = (json.loads(r.key_path.read_text(encoding="utf-8")) for r in (first, again))
    assert key_a["models"] == key_b["models"] and key_a["items"] == key_b["items"]
    assert model_codes(list(MODELS), 3) == model_codes(list(reversed(MODELS)) * 2, 3)


def test_assignment_needs_several_raters_for_overlap():
    shares = assign_items([f"i{k}" for k in range(20)], raters=3, overlap=0.25, overlap_raters=3, seed=0)
    counts = pd.Series([i for s in shares for i in s]).value_counts()
    assert len(counts) == 20 and (counts == 3).sum() == 5 and (counts == 1).sum() == 15
    with pytest.raises(RatingError, match="overlap_raters"):
        assign_items(["a", "b"], raters=1, overlap=0.5)


def test_item_id_naming_a_model_is_refused(tmp_path):
    responses = make_responses()
    responses.loc[0, "id"] = "qwen-7b-row-0"
    with pytest.raises(RatingError, match="unblind"):
        export_rating_sheet(responses, tmp_path / "s.xlsx")


def test_round_trip_unblinds_and_counts_unrated(filled):
    ratings = import_ratings(list(filled.sheets), filled.key_path)
    responses = make_responses().set_index("id")
    assert len(ratings) == 17 + filled.n_overlap
    assert set(ratings["rater"]) == {"rater1", "张三"} and set(ratings["source"]) == {"human"}
    unrated = ratings[ratings["status"] == "unrated"]
    assert len(unrated) == 1 and unrated["rating"].isna().all() and unrated["row"].tolist() == [3]
    assert (ratings["model"] == responses.loc[ratings["item"], "model"].to_numpy()).all()
    assert (ratings["prompt_id"] == responses.loc[ratings["item"], "prompt_id"].to_numpy()).all()
    rated = ratings.dropna(subset=["rating"])
    assert (rated["rating"] == [score(i) for i in rated["item"]]).sum() == len(rated) - 1


def test_aggregation_equals_pandas(filled, tmp_path):
    write_ratings(import_ratings(list(filled.sheets), filled.key_path), tmp_path / "r.parquet")
    ratings = read_ratings(tmp_path / "r.parquet")
    summary = aggregate_ratings(ratings)
    rated = ratings.dropna(subset=["rating"])
    for keys, scope in ((["model"], "model"), (["model", "domain_zh"], "model_domain")):
        expected = rated.groupby([*keys, "item"])["rating"].mean().groupby(keys).mean()
        got = summary[summary["scope"] == scope].rename(columns={"domain": "domain_zh"}).set_index(keys)
        pd.testing.assert_series_equal(got["mean"], expected, check_names=False)
    by_model = summary[summary["scope"] == "model"].set_index("model")
    assert (by_model["n_ratings"] == rated.groupby("model").size()).all()
    assert (by_model["n_items"] == rated.groupby("model")["item"].nunique()).all()
    assert (by_model["ci_low"] <= by_model["mean"]).all() and (by_model["mean"] <= by_model["ci_high"]).all()
    overall = summary[summary["scope"] == "all"].iloc[0]
    units = [u for u in rated.groupby("item")["rating"].apply(list) if len(u) > 1]
    assert overall["n_items_multi"] == len(units) > 0 and overall["n_unrated"] == 1
    assert overall["alpha"] == pytest.approx(krippendorff_alpha(units))
    assert "alpha" in overall["agreement"] and "张三" not in format_summary(summary)


def test_bad_cells_are_named_by_file_sheet_row_and_column(exported):
    path = exported.sheets[0]
    wb = openpyxl.load_workbook(path)
    ws = wb[RATINGS]
    for r in range(2, ws.max_row + 1):
        ws.cell(r, RATING_COL).value = 3
    ws.cell(2, RATING_COL).value, ws.cell(4, RATING_COL).value = "abc", 6
    ws.cell(5, ITEM_COL).value = "not-an-item"
    ws.cell(6, ITEM_COL).value, ws.cell(6, ITEM_COL + 1).value = ws.cell(7, ITEM_COL).value, ws["B7"].value
    ws["B8"] = "M1" if ws["B8"].value != "M1" else "M2"  # a model code that no longer fits its item
    wb.save(path)
    with pytest.raises(RatingError) as err:
        import_ratings([path], exported.key_path)
    message = str(err.value)
    assert "5 problem(s)" in message
    assert f"{path}, sheet 'ratings', row 2, column F (rating): 'abc' is not on the scale" in message
    assert f"{path}, sheet 'ratings', row 4, column F (rating): 6 is not on the scale" in message
    assert f"{path}, sheet 'ratings', row 5, column A (item): item 'not-an-item' is not in the key" in message
    assert f"{path}, sheet 'ratings', row 7, column A (item)" in message and "also in row 6" in message
    assert f"{path}, sheet 'ratings', row 8, column B (model_code)" in message


def test_many_bad_ratings_are_listed_up_to_twenty(tmp_path):
    responses = pd.concat([make_responses()] * 2, ignore_index=True)
    responses["id"] = [row_id(i) for i in range(len(responses))]
    result = export_rating_sheet(responses, tmp_path / "s.xlsx")
    fill(result.sheets[0], lambda item, r: 0)
    with pytest.raises(RatingError, match=r"34 problem\(s\)") as err:
        import_ratings(list(result.sheets), result.key_path)
    assert str(err.value).count("is not on the scale") == 20 and "... and 14 more" in str(err.value)


def test_rater_name_falls_back_to_file_stem_and_must_be_unique(exported):
    fill(exported.sheets[0], lambda item, r: 4, rater=None)
    fill(exported.sheets[1], lambda item, r: 4, rater="sheet.rater1")
    with pytest.raises(RatingError, match="rater 'sheet.rater1' also names"):
        import_ratings(list(exported.sheets), exported.key_path)
    assert set(import_ratings(exported.sheets[:1], exported.key_path)["rater"]) == {"sheet.rater1"}


def test_a_file_that_is_not_a_key_is_refused(exported, tmp_path):
    (tmp_path / "k.json").write_text('{"models": {}}', encoding="utf-8")
    with pytest.raises(RatingError, match="not a rating key"):
        import_ratings(list(exported.sheets), tmp_path / "k.json")


def test_krippendorff_alpha_on_krippendorffs_example():
    """Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability", 4 observers x 12 units
    with missing values: nominal 0.743, ordinal 0.815, interval 0.849."""
    nan = math.nan
    table = np.array([[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
                      [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
                      [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
                      [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]])
    units = [[v for v in column if not math.isnan(v)] for column in table.T]
    assert round(krippendorff_alpha(units, "nominal"), 3) == 0.743
    assert round(krippendorff_alpha(units, "ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(units, "interval"), 3) == 0.849


def test_nan_is_a_missing_rating_in_agreement():
    """NaN means "not rated" (a blank rating in the rating table): Krippendorff's table passed with
    its missing entries as NaN gives the published values, and a NaN changes nothing."""
    table = np.array([[1, 2, 3, 3, 2, 1, 4, 1, 2, math.nan, math.nan, math.nan],
                      [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, math.nan, 3],
                      [math.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, math.nan],
                      [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, math.nan]])
    with_nan = [list(column) for column in table.T]
    assert round(krippendorff_alpha(with_nan, "nominal"), 3) == 0.743
    assert round(krippendorff_alpha(with_nan, "ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(with_nan, "interval"), 3) == 0.849
    units, with_nan = [[1, 2], [1, 1], [2, 2]], [[1, 2, math.nan], [1, 1], [math.nan, 2, 2], [5, math.nan]]
    for level in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha(with_nan, level) == pytest.approx(krippendorff_alpha(units, level))
    assert exact_agreement(with_nan) == pytest.approx(exact_agreement(units))


def test_krippendorff_alpha_by_hand():
    """Units (1,2), (1,1), (2,2): coincidences o11 = o22 = 2, o12 = o21 = 1, n1 = n2 = 3, n = 6;
    alpha = 1 - (n - 1) * (o12 + o21) / (2 * n1 * n2) = 1 - 5 * 2 / 18 = 4/9 (any metric on 2 values)."""
    units = [[1, 2], [1, 1], [2, 2], [5]]  # the single value pairs with nothing and is ignored
    for level in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha(units, level) == pytest.approx(4 / 9)
    assert exact_agreement(units) == pytest.approx(2 / 3)
    assert math.isnan(krippendorff_alpha([[3, 3], [3, 3]])) and math.isnan(krippendorff_alpha([[1], [2]]))


def test_no_item_rated_twice_is_said_not_numbered(tmp_path):
    result = export_rating_sheet(make_responses(), tmp_path / "s.xlsx", raters=2)
    for sheet in result.sheets:
        fill(sheet, lambda item, r: score(item))
    summary = aggregate_ratings(import_ratings(list(result.sheets), result.key_path))
    assert (summary["agreement"] == NO_OVERLAP).all() and summary["alpha"].isna().all()
    assert summary["exact_agreement"].isna().all()


def test_sources_are_never_pooled(filled):
    human = import_ratings(list(filled.sheets), filled.key_path)
    judge = human.assign(source="judge:gpt-4o", rater="gpt-4o", rating=5.0, status="rated")
    both = aggregate_ratings(pd.concat([human, judge], ignore_index=True))
    alone = aggregate_ratings(human)
    got = both[both["source"] == "human"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, alone)
    judged = both[both["source"] == "judge:gpt-4o"]
    assert len(judged) == len(alone) and (judged["mean"] == 5.0).all()
    assert (judged["n_ratings"].to_numpy() == (alone["n_ratings"] + alone["n_unrated"]).to_numpy()).all()
