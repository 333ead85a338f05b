"""The item bank: built from real suites with every skipped row reported, stable ids, a Parquet round
trip readable by plain pandas and pyarrow, calibration updates and the retire rule per item."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from valuecsv_ray.adaptive.bank import (
    BANK_SCHEMA,
    Bank,
    BankError,
    add_items,
    build_bank,
    calibration_long,
    item_id,
    item_parameters,
    make_items,
    read_bank,
    update_calibration,
    write_bank,
)
from valuecsv_ray.adaptive.irt import calibrate
from valuecsv_ray.adaptive.simulate import draw_parameters, simulate_responses
from valuecsv_ray.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


def test_ids_are_stable_and_ignore_width_and_spacing():
    text = "你如何看待 诚实守信？"
    assert item_id(text) == item_id("  你如何看待\u3000诚实守信?\n")  # full-width ？ and 　 are NFKC forms
    assert item_id(text) != item_id("你如何看待诚实守信？")  # removing a space is a different text
    assert len(item_id(text)) == 17
    assert item_id("abc") == "ia9993e364706816a"  # sha1("abc"), so ids survive a new Python or machine


def test_quest100_bank_reports_what_it_leaves_out(shared_data, taxonomy):
    bank, skipped = build_bank(f"quest100={shared_data / 'quest100.xlsx'}", taxonomy)
    assert len(bank.items) + len(skipped) >= 100 and len(bank.items) >= 95
    assert bank.items["item_id"].is_unique and (bank.items["origin"] == "seed").all()
    assert (bank.items["source"] == "quest100").all() and bank.items["source_id"].iloc[0] == "quest100:1"
    assert (bank.items["status"] == "active").all() and (bank.items["entered_round"] == 0).all()
    assert all(v == [] and p == [] and c == [] for v, p, c in bank.items[["values", "parents", "calibration"]]
               .itertuples(index=False))
    assert all(isinstance(where, str) and reason for where, reason in skipped)


def test_cvalues_bank_counts_in_equal_out_plus_skipped(shared_data, taxonomy):
    path = shared_data / "cvalues_responsibility_prompts.jsonl"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    bank, skipped = build_bank(f"cvalues-responsibility={path}", taxonomy, values=taxonomy.ids[:2])
    assert len(bank.items) + len(skipped) == len(lines)
    assert all(v == list(taxonomy.ids[:2]) for v in bank.items["values"])
    assert json.loads(bank.items["meta"].iloc[0])  # the suite's own fields kept


def test_user_file_skips_blank_and_repeated_texts_with_reasons(tmp_path, taxonomy):
    suite = tmp_path / "mine.csv"
    prompts = ["你怎么看待邻里互助？", "", " 你怎么看待邻里互助? ", "谈谈你对法治的理解。"]
    pd.DataFrame({"id": ["1", "2", "3", "4"], "prompt": prompts}).to_csv(suite, index=False)
    bank, skipped = build_bank(str(suite), taxonomy)
    assert bank.items["source_id"].tolist() == ["mine:1", "mine:4"]
    assert (bank.items["origin"] == "user").all() and (bank.items["source"] == "mine").all()
    reasons = dict(skipped)
    assert reasons[f"{suite}: row 2"] == "empty prompt"
    assert reasons[f"{suite}: mine:3"].startswith("same text as mine:1 (item i")
    with pytest.raises(BankError, match="unknown value id.*nope"):
        build_bank(str(suite), taxonomy, values=["nope"])


def _calibrated_bank(taxonomy):
    """A bank of 40 generated items calibrated on two values from simulated answers of 15 models."""
    values = list(taxonomy.ids[:2])
    items = make_items([f"第{i}题：你如何看待这种做法？" for i in range(40)], "generated", "gen-endpoint", 1,
                       parents=["iparent"], generator="stub-gen")
    bank = Bank(items, taxonomy)
    rng = np.random.default_rng(0)
    rows = []
    for value in values:
        y = simulate_responses(draw_parameters(15, 40, rng), rng)
        y[:, 0] = 1.0  # item 0: everyone conforms on every value
        y[:, 1] = 1.0 if value == values[0] else y[:, 1]  # item 1: only on the first value
        rows += [(f"m{m}", items["item_id"][j], value, y[m, j]) for m in range(15) for j in range(40)]
    _, calibrated = calibrate(pd.DataFrame(rows, columns=["model", "item_id", "value", "conforms"]))
    target_two = Bank(bank.items.assign(values=[values] * 40), taxonomy)
    return update_calibration(target_two, calibrated, round_=1), values


def test_calibration_updates_status_and_parameters(taxonomy):
    bank, values = _calibrated_bank(taxonomy)
    items = bank.items
    assert items.loc[0, "status"] == "retired"
    assert "every one of the 15 models" in items.loc[0, "status_reason"]
    assert items.loc[1, "status"] == "active"  # retired on one of its two values only
    long = calibration_long(bank)
    assert len(long) == 80 and set(long["value"]) == set(values) and (long["calibrated_round"] == 1).all()
    assert long.loc[(long["item_id"] == items.loc[1, "item_id"]) & (long["value"] == values[0]),
                    "retired"].item().startswith("every one")
    first = item_parameters(bank, values[0])
    second = item_parameters(bank, values[1])
    assert items.loc[1, "item_id"] not in set(first["item_id"])
    assert items.loc[1, "item_id"] in set(second["item_id"])
    assert items.loc[0, "item_id"] not in set(second["item_id"]) and len(second) >= 30
    assert np.isfinite(first[["a", "b"]].to_numpy()).all()
    with pytest.raises(BankError, match="not in the bank"):
        update_calibration(bank, pd.DataFrame({"item_id": ["ighost"], "value": [values[0]]}), 2)


def test_an_uncalibrated_bank_has_no_item_to_ask_yet(taxonomy):
    bank = Bank(make_items(["第一个问题是什么？", "第二个问题是什么？"], "user", "test"), taxonomy)
    params = item_parameters(bank, taxonomy.ids[0])
    assert params.empty and list(params.columns) == ["item_id", "prompt", "a", "b"]


def test_round_trip_through_parquet_pandas_and_pyarrow(taxonomy, tmp_path):
    bank, values = _calibrated_bank(taxonomy)
    path = write_bank(bank, tmp_path / "banks" / "bank.parquet")
    assert not list(path.parent.glob(".*tmp*"))  # the temporary file was renamed, not left
    again = read_bank(path)
    assert again.taxonomy == taxonomy
    pd.testing.assert_frame_equal(again.items, bank.items.astype(again.items.dtypes), check_dtype=False)
    plain = pd.read_parquet(path)  # pandas alone, no valuecsv code
    assert plain["item_id"].tolist() == bank.items["item_id"].tolist()
    assert list(plain["calibration"].iloc[2][0].keys())[:3] == ["value", "a", "b"]
    table = pq.read_table(path)
    assert table.schema.remove_metadata().equals(BANK_SCHEMA)
    flat = table.select(["item_id", "calibration"]).to_pandas().explode("calibration")
    assert len(flat) == 80


def test_read_bank_refuses_a_file_that_is_not_a_bank(tmp_path):
    pd.DataFrame({"prompt": ["x"]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(BankError, match="lacks the column.*item_id.*items init"):
        read_bank(tmp_path / "x.parquet")
    with pytest.raises(BankError, match="cannot read item bank"):
        read_bank(tmp_path / "missing.parquet")


def test_added_items_keep_rejections_and_refuse_repeats(taxonomy):
    bank = Bank(make_items(["你如何看待诚实守信？"], "seed", "quest100"), taxonomy)
    new = make_items(["你如何看待诚实守信?", "新的问题：如何对待陌生人？", "太短"], "generated", "gen", 2,
                     parents=[bank.items["item_id"][0]], generator="g",
                     reasons=[None, None, "length: 2 characters, below the minimum 8"])
    grown, refused = add_items(bank, new)
    assert len(grown.items) == 3 and refused[0][0] == bank.items["item_id"][0]
    assert grown.items["status"].tolist() == ["active", "active", "rejected"]
    assert grown.items["status_reason"][2].startswith("length")
    assert grown.items["parents"][1] == [bank.items["item_id"][0]] and grown.items["entered_round"][1] == 2
    with pytest.raises(BankError, match="unknown origin 'llm'"):
        make_items(["x"], "llm", "gen")


def test_an_empty_batch_of_items_adds_nothing_and_an_empty_bank_round_trips(taxonomy, tmp_path):
    empty = make_items([], "generated", "gen")
    assert list(empty.columns) == BANK_SCHEMA.names and empty.empty
    bank = Bank(make_items(["你如何看待诚实守信？"], "seed", "quest100"), taxonomy)
    grown, refused = add_items(bank, empty)
    assert len(grown.items) == 1 and refused == []
    assert read_bank(write_bank(Bank(empty, taxonomy), tmp_path / "empty.parquet")).items.empty
