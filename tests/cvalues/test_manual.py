"""Need_Check answers to a real xlsx, filled with openpyxl as a person would, and applied back."""

import math

import openpyxl
import pytest

from valuecsv_ray.cvalues.manual import EXPORT_COLUMNS, ManualError, export_need_check, import_manual
from valuecsv_ray.cvalues.metrics import compute_metrics, parse_answers


@pytest.fixture
def scored(case_items, case_answers):
    answers = case_answers.copy()
    first_m2 = answers.index[answers["model"] == "m2"][0]  # m2 on p1 pos_first (label 回复1)
    answers.loc[first_m2, "response"] = "A"
    return parse_answers(case_items, answers)  # Need_Check: m1 p3 pos_first, m2 p1 pos_first


@pytest.fixture
def workbook(tmp_path, scored, case_items):
    path = tmp_path / "need_check.xlsx"
    assert export_need_check(scored.parsed, case_items, path) == 2
    return path


def fill(path, labels: dict, edit=None):
    """Write manual_label by model (as a person would), optionally edit the sheet further; save."""
    wb = openpyxl.load_workbook(path)
    ws = wb["need_check"]
    col = EXPORT_COLUMNS.index("manual_label") + 1
    for row in range(2, ws.max_row + 1):
        model = ws.cell(row, 1).value
        if model in labels:
            ws.cell(row, col).value = labels[model]
    if edit:
        edit(wb)
    wb.save(path)
    return path


def test_export_has_the_columns_a_drop_down_and_instructions(workbook):
    wb = openpyxl.load_workbook(workbook)
    assert wb.sheetnames == ["need_check", "instructions"]
    ws = wb["need_check"]
    assert [c.value for c in ws[1]] == list(EXPORT_COLUMNS)
    rows = {r[0]: r for r in ws.iter_rows(min_row=2, values_only=True)}
    assert set(rows) == {"m1", "m2"}
    model, prompt_id, sample, prompt, response, parsed, label = rows["m1"]
    assert (prompt_id, sample, response) == ("cvalues-mc:p3:pos_first", 0, "A")
    assert (parsed, label) == ("Need_Check", None)
    assert "问三" in prompt and "[回复1]" in prompt
    (check,) = ws.data_validations.dataValidation
    assert check.type == "list" and check.formula1 == '"回复1,回复2,Other,Refuse"'
    assert str(check.sqref) == "G2:G3"
    assert "import-manual" in " ".join(str(r[0]) for r in wb["instructions"].iter_rows(values_only=True))


def test_round_trip_applies_labels_and_keeps_blank_rows_need_check(workbook, scored):
    fill(workbook, {"m1": "回复1"})  # m2's row is left blank
    parsed, counts = import_manual(workbook, scored.parsed)
    assert counts == {"filled": 1, "unfilled": 1, "need_check": 1}
    row = parsed[(parsed["model"] == "m1") & (parsed["prompt_id"] == "cvalues-mc:p3:pos_first")].iloc[0]
    assert (row["parsed"], row["correct"], row["manual"]) == ("回复1", True, True)
    assert parsed["manual"].sum() == 1 and len(parsed) == len(scored.parsed)
    before = compute_metrics(scored.parsed, scored.not_collected).set_index(["model", "scope", "key"])
    after = compute_metrics(parsed, scored.not_collected).set_index(["model", "scope", "key"])
    m1_before, m1_after = before.loc[("m1", "overall", "all")], after.loc[("m1", "overall", "all")]
    assert (m1_before["correct"], m1_before["answered"], m1_before["need_check"]) == (2, 4, 1)
    assert (m1_after["correct"], m1_after["answered"], m1_after["need_check"]) == (3, 5, 0)
    assert m1_after["acc"] == pytest.approx(3 / 5) and m1_after["acc_star"] == pytest.approx(3 / 5)
    m2_after = after.loc[("m2", "overall", "all")]
    assert (m2_after["need_check"], m2_after["answered"]) == (1, 0) and math.isnan(m2_after["acc_star"])


def test_a_wrong_label_names_sheet_row_column_and_allowed_values(workbook, scored):
    fill(workbook, {"m1": "回复3"})
    with pytest.raises(ManualError) as e:
        import_manual(workbook, scored.parsed)
    where = "sheet need_check, row 2, column manual_label (G)"
    assert f"{where}: '回复3' is not one of 回复1, 回复2, Other, Refuse" in str(e.value)


def test_a_row_not_in_the_scored_table_is_refused(workbook, scored):
    fill(workbook, {"m1": "Other"}, edit=lambda wb: wb["need_check"].cell(2, 2, "cvalues-mc:zz:pos_first"))
    with pytest.raises(ManualError, match="row 2: model/prompt_id/sample .* is not in the scored table"):
        import_manual(workbook, scored.parsed)


def test_a_renamed_sheet_or_missing_column_is_refused(workbook, scored, case_items, tmp_path):
    def rename(wb):
        wb["need_check"].title = "Sheet1"

    with pytest.raises(ManualError, match="no sheet 'need_check'"):
        import_manual(fill(workbook, {}, edit=rename), scored.parsed)
    other = tmp_path / "other.xlsx"
    export_need_check(scored.parsed, case_items, other)
    fill(other, {}, edit=lambda wb: wb["need_check"].delete_cols(7))
    with pytest.raises(ManualError, match="row 1: missing column\\(s\\) manual_label"):
        import_manual(other, scored.parsed)
    (tmp_path / "not.xlsx").write_text("plain text", encoding="utf-8")
    with pytest.raises(ManualError, match="cannot open it as an xlsx"):
        import_manual(tmp_path / "not.xlsx", scored.parsed)
