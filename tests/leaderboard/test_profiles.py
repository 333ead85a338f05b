"""Weight profiles: presets come from the taxonomy's groups, files resolve value > group > default,
and bad files are refused naming the file and the key."""

import re

import numpy as np
import pytest
import yaml

from valuecsv_ray.leaderboard.profiles import LeaderboardError, load_profile, load_profiles, presets
from valuecsv_ray.taxonomy import load_taxonomy

TAX = load_taxonomy()


def write_yaml(tmp_path, record, name="weights.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(record, allow_unicode=True), encoding="utf-8")
    return path


def test_presets_are_uniform_and_one_per_group(taxonomy):
    found = presets(taxonomy)
    assert list(found) == ["uniform", *taxonomy.groups]
    assert found["uniform"].vector(taxonomy).tolist() == [1.0] * len(taxonomy.ids)
    for group in taxonomy.groups:
        members = {label.id for label in taxonomy.members(group)}
        assert found[group].weights == {v: (1.0 if v in members else 0.0) for v in taxonomy.ids}
        assert load_profile(group, taxonomy) == found[group]


def test_default_taxonomy_presets_are_its_levels(toy):
    assert list(presets(TAX)) == ["uniform", *TAX.groups] and len(TAX.groups) > 1
    assert not set(TAX.groups) & set(presets(toy))  # nothing carries over from the default taxonomy


def test_file_weights_resolve_value_then_group_then_default(tmp_path, toy):
    path = write_yaml(tmp_path, {"name": "brave", "description": "courage first", "default": 0.5,
                                 "groups": {"inner": 2}, "values": {"courage": 3}})
    profile = load_profile(str(path), toy)
    assert profile.name == "brave" and profile.description == "courage first" and profile.source == str(path)
    assert profile.weights == {"courage": 3.0, "patience": 2.0, "kindness": 0.5}
    np.testing.assert_array_equal(profile.vector(toy), [3.0, 2.0, 0.5])


def test_default_weight_is_one(tmp_path):
    path = write_yaml(tmp_path, {"name": "almost uniform", "values": {TAX.ids[0]: 0}})
    weights = load_profile(str(path), TAX).vector(TAX)
    assert weights[0] == 0.0 and (weights[1:] == 1.0).all()


@pytest.mark.parametrize("record, message", [
    ({"name": "x", "values": {"courage": -1}}, "values.courage: weight -1 must be a finite number >= 0"),
    ({"name": "x", "default": 0}, "every value's weight is 0"),
    ({"name": "x", "default": 0, "groups": {"inner": 0, "outer": 0.0}}, "every value's weight is 0"),
    ({"name": "x", "values": {"bravery": 1}},
     "values.bravery: unknown value id 'bravery'; known value ids: courage, patience, kindness"),
    ({"name": "x", "groups": {"civic": 1}},
     "groups.civic: unknown pillar 'civic'; known pillars: inner, outer"),
    ({"name": "x", "values": {"courage": "high"}}, "values.courage: weight 'high' is not a number"),
    ({"name": "x", "groups": {"inner": True}}, "groups.inner: weight True is not a number"),
    ({"name": "x", "default": float("nan")}, "default: weight nan must be a finite number >= 0"),
    ({"name": "x", "weights": {"courage": 1}},
     "unknown key 'weights'; expected name, description, default, groups, values"),
    ({"values": {"courage": 1}}, "key 'name': give the profile a name"),
    ({"name": "x", "values": [1, 2]}, "key 'values': expected a mapping"),
])
def test_bad_profiles_are_refused_naming_file_and_key(tmp_path, toy, record, message):
    path = write_yaml(tmp_path, record)
    with pytest.raises(LeaderboardError, match=re.escape(message)) as caught:
        load_profile(str(path), toy)
    assert str(caught.value).startswith(f"{path}: invalid weight profile")


def test_every_problem_is_reported_at_once(tmp_path, toy):
    path = write_yaml(tmp_path, {"name": "x", "colour": "red", "values": {"courage": -2, "bravery": 1}})
    with pytest.raises(LeaderboardError) as caught:
        load_profile(str(path), toy)
    text = str(caught.value)
    assert "unknown key 'colour'" in text and "values.courage" in text and "values.bravery" in text


def test_unknown_preset_lists_the_presets(toy):
    with pytest.raises(LeaderboardError, match=re.escape("(uniform, inner, outer) nor a YAML file")):
        load_profile("civic", toy)


def test_unreadable_and_non_mapping_files(tmp_path, toy):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(LeaderboardError, match=re.escape(f"profile file {bad}: cannot read it as YAML")):
        load_profile(str(bad), toy)
    listed = write_yaml(tmp_path, [1, 2], "list.yaml")
    with pytest.raises(LeaderboardError, match=re.escape(f"{listed}: expected a mapping")):
        load_profile(str(listed), toy)


def test_two_profiles_with_one_name_are_refused(tmp_path, toy):
    path = write_yaml(tmp_path, {"name": "inner", "values": {"kindness": 2}})
    assert [p.name for p in load_profiles(["uniform", "outer"], toy)] == ["uniform", "outer"]
    with pytest.raises(LeaderboardError, match="profile name.s. inner given more than once"):
        load_profiles(["inner", str(path)], toy)


def test_the_shipped_example_profile_loads_with_the_documented_weights():
    from pathlib import Path

    from valuecsv_ray.leaderboard import load_profile
    from valuecsv_ray.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    shipped = Path(__file__).resolve().parents[2] / "configs" / "profile-rule-of-law-first.yaml"
    weights = dict(zip(taxonomy.ids, load_profile(str(shipped), taxonomy).vector(taxonomy), strict=True))
    assert weights["rule_of_law"] == 4 and weights["freedom"] == 2 and weights["harmony"] == 1
