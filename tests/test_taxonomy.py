"""Taxonomies: the built-in twelve values (four per level), any label found by any of its names,
other value systems from YAML, and invalid taxonomies refused with every problem named."""

import pytest
import yaml

from valuecsv_ray.taxonomy import (
    DEFAULT_TAXONOMY,
    Label,
    Taxonomy,
    TaxonomyError,
    builtin_path,
    load_taxonomy,
)

CSV = load_taxonomy()
LABELS = CSV.labels


def _record(**changes) -> dict:
    """A small valid taxonomy mapping: two groups, three labels."""
    record = {
        "name": "toy", "title": "Toy values", "group_kind": "tier", "groups": ["inner", "outer"],
        "labels": [
            {"id": "care", "en": "Care", "zh": "关爱", "group": "inner", "column": "care_col"},
            {"id": "thrift", "en": "Thrift", "zh": "节俭", "group": "inner", "column": "thrift_col"},
            {"id": "courage", "en": "Courage", "zh": "勇敢", "group": "outer", "column": "courage_col"},
        ],
    }
    record.update(changes)
    return record


# ---------------------------------------------------------------- the built-in taxonomy


def test_default_is_the_twelve_core_socialist_values_four_per_level():
    assert load_taxonomy(DEFAULT_TAXONOMY) == CSV
    assert (CSV.name, CSV.group_kind) == ("core-socialist-values", "level")
    assert CSV.groups == ("national", "societal", "personal")
    assert len(LABELS) == 12
    for group in CSV.groups:
        assert len(CSV.members(group)) == 4, group
    assert all(isinstance(label, Label) for label in LABELS)


def test_ids_names_and_columns_are_unique():
    for attr in ("id", "en", "zh", "column"):
        assert len({getattr(label, attr) for label in LABELS}) == 12, attr
    assert CSV.ids == tuple(label.id for label in LABELS)
    assert CSV.columns == tuple(label.column for label in LABELS)
    assert all(column.endswith("_scr") for column in CSV.columns)  # ValueCSV5000's label columns


@pytest.mark.parametrize("attr", ["id", "en", "zh", "column"])
def test_get_accepts_every_name(attr):
    for label in LABELS:
        assert CSV.get(getattr(label, attr)) is label


def test_get_ignores_case_and_spaces():
    label = LABELS[7]
    assert CSV.get(f"  {label.en.upper()} ") is label


def test_unknown_value_lists_valid_ids():
    with pytest.raises(KeyError) as e:
        CSV.get("kindness")
    message = str(e.value)
    assert "kindness" in message and CSV.name in message
    assert all(i in message for i in CSV.ids)


def test_parse_all():
    assert CSV.parse("all") == LABELS
    assert CSV.parse(None) == LABELS
    assert CSV.parse(["all"]) == LABELS


def test_parse_comma_list_in_taxonomy_order():
    last, first = LABELS[-1], LABELS[0]
    assert CSV.parse(f"{last.id}, {first.zh},{last.column}") == (first, last)
    assert CSV.parse([last.en, first.id]) == (first, last)


def test_parse_unknown_name_raises_listing_ids():
    with pytest.raises(KeyError) as e:
        CSV.parse(f"{LABELS[0].id},nope")
    assert "nope" in str(e.value)
    assert all(i in str(e.value) for i in CSV.ids)


def test_parse_empty_list_raises():
    with pytest.raises(KeyError, match="no values given"):
        CSV.parse(" , ")


def test_group_positions_are_label_positions_in_group_order():
    positions = CSV.group_positions()
    assert list(positions) == list(CSV.groups)
    assert sorted(i for p in positions.values() for i in p) == list(range(12))
    for group, where in positions.items():
        assert [LABELS[i] for i in where] == list(CSV.members(group))


def test_subset_keeps_order_and_drops_empty_groups():
    personal, national = CSV.members("personal")[0], CSV.members("national")[2]
    sub = CSV.subset([personal.id, national.id])
    assert sub.labels == (national, personal)  # taxonomy order, not the order asked
    assert sub.groups == ("national", "personal")
    assert sub.group_positions() == {"national": [0], "personal": [1]}
    assert (sub.name, sub.group_kind) == (CSV.name, CSV.group_kind)


def test_to_dict_round_trips():
    assert Taxonomy.from_dict(CSV.to_dict()) == CSV
    toy = Taxonomy.from_dict(_record())
    assert Taxonomy.from_dict(toy.to_dict()) == toy


def test_label_name_shows_both_languages():
    assert LABELS[0].name == f"{LABELS[0].en} {LABELS[0].zh}"


# ---------------------------------------------------------------- other taxonomies


def test_yaml_file_defines_another_value_system(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(_record(), allow_unicode=True), encoding="utf-8")
    toy = load_taxonomy(path)
    assert load_taxonomy(str(path)) == toy
    assert (toy.name, toy.title, toy.group_kind) == ("toy", "Toy values", "tier")
    assert toy.groups == ("inner", "outer")
    assert toy.ids == ("care", "thrift", "courage")
    assert toy.columns == ("care_col", "thrift_col", "courage_col")
    assert [label.id for label in toy.members("inner")] == ["care", "thrift"]
    assert toy.get("勇敢").id == "courage"


def test_optional_fields_default():
    labels = [{"id": "care", "group": "g", "column": "c"}]
    toy = Taxonomy.from_dict({"name": "bare", "groups": ["g"], "labels": labels})
    assert (toy.title, toy.group_kind) == ("bare", "group")
    assert (toy.labels[0].en, toy.labels[0].zh) == ("care", "")


def test_every_problem_is_named_at_once():
    labels = [
        {"id": "Care", "group": "inner", "column": "a"},  # not snake_case
        {"id": "thrift", "group": "middle", "column": "a"},  # unknown group, column twice
        {"id": "thrift", "group": "inner", "column": "b"},  # id twice
        {"en": "No id"},  # id, group and column missing
    ]
    with pytest.raises(TaxonomyError) as e:
        Taxonomy.from_dict(_record(labels=labels), where="toy.yaml")
    message = str(e.value)
    assert message.startswith("toy.yaml: invalid taxonomy")
    for part in ("labels[0]: id 'Care' must be snake_case",
                 "labels[1] (thrift): group 'middle' is not in groups",
                 "column 'a' is used twice",
                 "id 'thrift' is used twice",
                 "labels[3]: missing id, group, column",
                 "group 'outer' has no labels"):
        assert part in message, part
    assert len(message.splitlines()) == 1 + 6


def test_missing_top_level_keys_are_named():
    with pytest.raises(TaxonomyError) as e:
        Taxonomy.from_dict({"title": "nothing"})
    for key in ("name", "groups", "labels"):
        assert f"missing key {key!r}" in str(e.value)
    with pytest.raises(TaxonomyError, match="expected a mapping"):
        Taxonomy.from_dict(["not", "a", "mapping"])


def test_unknown_taxonomy_says_what_to_give():
    with pytest.raises(TaxonomyError) as e:
        load_taxonomy("no-such-values")
    assert "'no-such-values'" in str(e.value)
    assert str(builtin_path()) in str(e.value) and DEFAULT_TAXONOMY in str(e.value)


def test_unreadable_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="cannot read taxonomy file") as e:
        load_taxonomy(path)
    assert str(path) in str(e.value)
    path.write_text(yaml.safe_dump(_record(groups=["inner"])), encoding="utf-8")
    with pytest.raises(TaxonomyError, match="group 'outer' is not in groups") as e:
        load_taxonomy(path)
    assert str(e.value).startswith(str(path))


def test_blank_names_fall_back_instead_of_reading_none():
    tax = Taxonomy.from_dict({"name": "t", "groups": ["g"], "labels": [
        {"id": "care", "en": None, "zh": "", "group": "g", "column": "c"}]})
    assert (tax.labels[0].en, tax.labels[0].zh) == ("care", "")
    with pytest.raises(KeyError):
        tax.get("none")
