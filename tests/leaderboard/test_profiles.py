"""Weight profiles: presets come from the taxonomy's groups and the preset files shipped beside it,
files resolve value > group > default, and bad files are refused naming the file and the key;
`valuecsv-ray profiles` lists the presets as a user types it."""

import re

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from valuecsv_ray.cli.profiles import profiles_cmd
from valuecsv_ray.leaderboard import profiles as profiles_module
from valuecsv_ray.leaderboard.profiles import LeaderboardError, load_profile, load_profiles, presets
from valuecsv_ray.taxonomy import load_taxonomy

TAX = load_taxonomy()


def write_yaml(tmp_path, record, name="weights.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(record, allow_unicode=True), encoding="utf-8")
    return path


def test_presets_are_uniform_and_one_per_group(taxonomy):
    found = presets(taxonomy)
    assert list(found)[:1 + len(taxonomy.groups)] == ["uniform", *taxonomy.groups]
    assert all(p.source.startswith("preset file ") for p in list(found.values())[1 + len(taxonomy.groups):])
    assert found["uniform"].vector(taxonomy).tolist() == [1.0] * len(taxonomy.ids)
    for group in taxonomy.groups:
        members = {label.id for label in taxonomy.members(group)}
        assert found[group].weights == {v: (1.0 if v in members else 0.0) for v in taxonomy.ids}
        assert load_profile(group, taxonomy) == found[group]


def test_default_taxonomy_presets_are_its_levels_and_its_shipped_files(toy):
    assert list(presets(TAX)) == ["uniform", *TAX.groups, "rule-of-law-first"] and len(TAX.groups) > 1
    assert list(presets(toy)) == ["uniform", *toy.groups]  # nothing carries over from the default taxonomy


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


def test_the_shipped_preset_loads_by_name_with_the_documented_weights():
    profile = load_profile("rule-of-law-first", TAX)
    weights = dict(zip(TAX.ids, profile.vector(TAX), strict=True))
    assert weights["rule_of_law"] == 4 and weights["freedom"] == 2 and weights["harmony"] == 1
    assert profile.source == "preset file core-socialist-values/rule-of-law-first.yaml"
    shipped = profiles_module.shipped_path(TAX.name, "rule-of-law-first")
    assert shipped.is_file() and load_profile(str(shipped), TAX).weights == profile.weights  # a user's copy


def shipped_folder(tmp_path, monkeypatch, files: dict[str, dict]):
    """A preset folder holding `files` (name -> profile record) in place of the shipped ones."""
    for name, record in files.items():
        write_yaml(tmp_path, record, name)
    monkeypatch.setattr(profiles_module, "presets_dir", lambda taxonomy_name: tmp_path)


def test_adding_a_preset_is_one_file(tmp_path, monkeypatch, toy):
    shipped_folder(tmp_path, monkeypatch, {"kind.yaml": {"name": "kind", "default": 0,
                                                          "values": {"kindness": 3, "courage": 1}}})
    assert list(presets(toy)) == ["uniform", "inner", "outer", "kind"]
    kind = load_profile("kind", toy)
    assert kind.weights == {"courage": 1.0, "patience": 0.0, "kindness": 3.0}
    assert kind.source == "preset file toy-virtues/kind.yaml"
    assert load_profiles(["kind", "uniform"], toy)[0] == kind


@pytest.mark.parametrize("name, record, message", [
    ("kind.yaml", {"name": "kind", "values": {"bravery": 1}}, "values.bravery: unknown value id 'bravery'"),
    ("kind.yaml", {"name": "kindness first"}, "key 'name': 'kindness first' must be the file's name 'kind'"),
    ("inner.yaml", {"name": "inner"}, "preset 'inner' has the name of a preset made from the taxonomy"),
])
def test_a_bad_preset_file_is_refused_naming_the_file_and_key(tmp_path, monkeypatch, toy, name, record,
                                                              message):
    shipped_folder(tmp_path, monkeypatch, {name: record})
    with pytest.raises(LeaderboardError, match=re.escape(message)) as caught:
        presets(toy)
    assert str(caught.value).startswith(str(tmp_path / name))


def test_presets_of_a_registry_with_some_values_are_checked_against_the_whole_taxonomy(tmp_path, monkeypatch):
    personal = TAX.subset([label.id for label in TAX.members("personal")])
    assert list(presets(personal)) == ["uniform", "personal", "rule-of-law-first"]  # groups known in full
    assert presets(personal)["rule-of-law-first"].weights == {v: 1.0 for v in personal.ids}
    shipped_folder(tmp_path, monkeypatch, {"law.yaml": {"name": "law", "default": 0,
                                                         "values": {"rule_of_law": 1}}})
    assert "law" not in presets(personal)  # every weight 0 on these values: it cannot rank them
    assert "law" in presets(TAX)


def test_profiles_command_lists_every_preset_with_its_origin_and_weights(tmp_path):
    result = CliRunner().invoke(profiles_cmd, [])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "weight-profile presets of taxonomy core-socialist-values (12 values)"
    rows = {line.split()[0]: line for line in lines[3:3 + len(presets(TAX))]}
    assert list(rows) == list(presets(TAX))
    assert "taxonomy" in rows["uniform"] and "every value 1" in rows["uniform"]
    assert "level societal" in rows["societal"] and "freedom, equality, justice, rule_of_law 1; others 0" in (
        rows["societal"])
    assert "file core-socialist-values/rule-of-law-first.yaml" in rows["rule-of-law-first"]
    assert "rule_of_law 4; freedom, equality, justice 2; others 1" in rows["rule-of-law-first"]


def test_profiles_command_reads_a_taxonomy_file_and_refuses_two_sources(tmp_path, toy):
    path = write_yaml(tmp_path, toy.to_dict(), "toy.yaml")
    result = CliRunner().invoke(profiles_cmd, ["--taxonomy", str(path)])
    assert result.exit_code == 0, result.output
    assert "taxonomy toy-virtues (3 values)" in result.output and "pillar inner" in result.output
    result = CliRunner().invoke(profiles_cmd, ["--taxonomy", str(path), "--registry", str(tmp_path)])
    assert result.exit_code == 2 and "give --taxonomy or --registry, not both" in result.output
    result = CliRunner().invoke(profiles_cmd, ["--registry", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "not a registry" in result.stderr


def test_profiles_command_lists_the_presets_of_a_registrys_values(tmp_path):
    from valuecsv_ray.testing.synthetic import random_registry

    societal = TAX.subset([label.id for label in TAX.members("societal")])
    registry = random_registry(tmp_path / "societal", taxonomy=societal)
    result = CliRunner().invoke(profiles_cmd, ["--registry", str(registry)])
    assert result.exit_code == 0, result.output
    assert "taxonomy core-socialist-values (4 values)" in result.output
    assert "rule_of_law 4; others 2" in result.output  # the shipped preset on these four values
    assert "national" not in result.output


def test_the_cli_lists_profiles_and_leaderboard_help_points_to_it():
    from valuecsv_ray.cli import main

    result = CliRunner().invoke(main, ["profiles"])
    assert result.exit_code == 0 and "rule-of-law-first" in result.output
    assert "`valuecsv-ray profiles`" in CliRunner().invoke(main, ["leaderboard", "--help"]).output
