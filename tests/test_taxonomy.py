"""The value table: twelve values, four per level, found by any of their names."""

import pytest

from valuecsv_ray.taxonomy import LABEL_COLUMNS, VALUE_IDS, VALUES, Level, parse_values, value_by_id


def test_twelve_values_four_per_level():
    assert len(VALUES) == 12
    for level in Level:
        assert sum(v.level is level for v in VALUES) == 4


def test_ids_names_and_columns_are_unique():
    for attr in ("id", "en", "zh", "column"):
        assert len({getattr(v, attr) for v in VALUES}) == 12, attr
    assert VALUE_IDS == tuple(v.id for v in VALUES)
    assert LABEL_COLUMNS == tuple(v.column for v in VALUES)


@pytest.mark.parametrize("attr", ["id", "en", "zh", "column"])
def test_value_by_id_accepts_every_name(attr):
    for v in VALUES:
        assert value_by_id(getattr(v, attr)) is v


def test_value_by_id_ignores_case_and_spaces():
    v = VALUES[7]
    assert value_by_id(f"  {v.en.upper()} ") is v


def test_unknown_value_lists_valid_ids():
    with pytest.raises(KeyError) as e:
        value_by_id("kindness")
    message = str(e.value)
    assert "kindness" in message
    assert all(i in message for i in VALUE_IDS)


def test_parse_values_all():
    assert parse_values("all") == VALUES
    assert parse_values(None) == VALUES
    assert parse_values(["all"]) == VALUES


def test_parse_values_comma_list_in_canonical_order():
    last, first = VALUES[-1], VALUES[0]
    chosen = parse_values(f"{last.id}, {first.zh},{last.column}")
    assert chosen == (first, last)
    assert parse_values([last.en, first.id]) == (first, last)


def test_parse_values_unknown_name_raises_listing_ids():
    with pytest.raises(KeyError) as e:
        parse_values(f"{VALUES[0].id},nope")
    assert "nope" in str(e.value)
    assert all(i in str(e.value) for i in VALUE_IDS)


def test_parse_values_empty_list_raises():
    with pytest.raises(KeyError, match="no values given"):
        parse_values(" , ")
