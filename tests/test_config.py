"""Training configuration: defaults, YAML plus overrides, and errors that name the key."""

from pathlib import Path

import pytest
import yaml

from valuecsv_ray.config import (
    ConfigError,
    Hyperparameters,
    TrainConfig,
    load_audit_config,
    load_train_config,
)
from valuecsv_ray.settings import parse_overrides
from valuecsv_ray.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
VALUES = TAXONOMY.labels

def test_defaults_validate():
    assert TrainConfig().problems() == []
    cfg = load_train_config()
    assert cfg == TrainConfig()
    assert cfg.task_ids == TAXONOMY.ids
    assert cfg.hparams == Hyperparameters()


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("name: small\nmax_epochs: 3\nbatch_size: 8\nlearning_rate: 1e-3\n", encoding="utf-8")
    cfg = load_train_config(path, {"max_epochs": 5, "seed": None})
    hp = cfg.hparams
    assert (cfg.name, hp.max_epochs, hp.batch_size, hp.seed) == ("small", 5, 8, 42)
    assert hp.learning_rate == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string
    assert isinstance(hp.learning_rate, float)
    assert cfg.registry_dir == Path("runs") / "small"


def test_to_dict_is_flat_and_loads_back(tmp_path):
    cfg = load_train_config(None, {"name": "flat", "max_epochs": 3, "aggregate": "mean", "num_workers": 2})
    record = cfg.to_dict()
    assert "hparams" not in record
    assert (record["max_epochs"], record["aggregate"], record["num_workers"]) == (3, "mean", 2)
    assert set(Hyperparameters().__dataclass_fields__) <= set(record)
    assert record["split_fractions"] == [0.7, 0.2, 0.1]
    path = tmp_path / "resolved.yaml"
    path.write_text(yaml.safe_dump(record), encoding="utf-8")
    assert load_train_config(path) == cfg


def test_unknown_key_suggests_the_right_one(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("lerning_rate: 0.001\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_train_config(path)
    assert "'lerning_rate'" in str(e.value)
    assert str(path) in str(e.value)
    assert "did you mean 'learning_rate'?" in str(e.value)


def test_every_invalid_setting_is_reported_at_once():
    bad = {
        "batch_size": 0,
        "mode": "both",
        "learning_rate": 5.0,
        "values": "kindness",
        "split_fractions": [0.5, 0.5, 0.5],
        "name": "a/b",
        "class_weighting": "auto",
        "aggregate": "median",
        "stride": 0,
    }
    with pytest.raises(ConfigError) as e:
        load_train_config(None, bad)
    message = str(e.value)
    for key in bad:
        assert key in message, key
    assert len(message.splitlines()) == 1 + len(bad)


def test_unknown_key_and_invalid_values_are_reported_together():
    with pytest.raises(ConfigError) as e:
        load_train_config(None, {"lerning_rate": 0.1, "batch_size": 0})
    assert "lerning_rate" in str(e.value) and "batch_size" in str(e.value)


@pytest.mark.parametrize(
    "override",
    [
        {"max_length": "long"},
        {"num_workers": "two"},
        {"split_fractions": ["a", "b", "c"]},
        {"resources_per_worker": ["CPU"]},
    ],
)
def test_wrong_types_are_config_errors(override):
    with pytest.raises(ConfigError, match=next(iter(override))):
        load_train_config(None, override)


def test_parse_overrides_reads_yaml_values():
    got = parse_overrides(
        [
            "learning_rate=1e-3",
            "max_epochs=3",
            "values=[freedom, justice]",
            "limit_rows=",
            "use_gpu=true",
            "name=1e3",
        ]
    )
    assert got == {
        "learning_rate": "1e-3",  # YAML 1.1; the float setting reads it as a number (below)
        "max_epochs": 3,
        "values": ["freedom", "justice"],
        "limit_rows": None,
        "use_gpu": True,
        "name": "1e3",
    }
    assert isinstance(got["max_epochs"], int)
    cfg = load_train_config(None, got)
    assert cfg.hparams.learning_rate == pytest.approx(1e-3) and isinstance(cfg.hparams.learning_rate, float)
    assert cfg.name == "1e3"  # a str setting keeps a number-like string
    assert (cfg.values, cfg.hparams.max_epochs, cfg.limit_rows, cfg.use_gpu) == (
        "freedom,justice", 3, None, True)


def test_parse_overrides_needs_key_value():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["max_epochs"])


def test_values_list_in_yaml_selects_in_taxonomy_order(tmp_path):
    chosen = [VALUES[6], VALUES[4]]
    path = tmp_path / "job.yaml"
    path.write_text(f"values: [{chosen[0].id}, {chosen[1].zh}]\n", encoding="utf-8")
    assert load_train_config(path).task_ids == (VALUES[4].id, VALUES[6].id)  # canonical order


def test_values_list_in_yaml_becomes_comma_string(tmp_path):
    chosen = [VALUES[6], VALUES[4]]
    path = tmp_path / "job.yaml"
    path.write_text(f"values: [{chosen[0].id}, {chosen[1].zh}]\n", encoding="utf-8")
    cfg = load_train_config(path)
    assert cfg.values == f"{chosen[0].id},{chosen[1].zh}"
    same = load_train_config(None, {"values": f"{chosen[0].id},{chosen[1].zh}"})
    assert cfg.to_dict() == same.to_dict()


def test_taxonomy_setting_chooses_the_value_set(tmp_path):
    toy = {"name": "toy", "groups": ["g"], "labels": [
        {"id": "care", "group": "g", "column": "care_col"},
        {"id": "thrift", "group": "g", "column": "thrift_col"}]}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(toy), encoding="utf-8")
    assert load_train_config(None, {"taxonomy": str(path)}).task_ids == ("care", "thrift")
    assert load_train_config(None, {"taxonomy": str(path), "values": "thrift"}).task_ids == ("thrift",)
    with pytest.raises(ConfigError, match=r"values: .*'freedom'.*care, thrift"):
        load_train_config(None, {"taxonomy": str(path), "values": "freedom"})


def test_unknown_or_invalid_taxonomy_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="taxonomy: taxonomy 'no-such-values'"):
        load_train_config(None, {"taxonomy": "no-such-values"})
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ngroups: [g]\nlabels: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="labels must be a non-empty list"):
        load_train_config(None, {"taxonomy": str(path)})


def test_tiny_backbone_caps_max_length():
    assert load_train_config(None, {"max_length": 512}).hparams.max_length == 512
    with pytest.raises(ConfigError, match="max_length must be <= 512 for the tiny backbone"):
        load_train_config(None, {"max_length": 1024})
    assert load_train_config(None, {"max_length": 1024, "backbone": "some/model"}).hparams.max_length == 1024


def test_task_ids_multilabel():
    assert load_train_config(None, {"mode": "multilabel", "values": "all"}).task_ids == ("multilabel",)


def test_fractional_gpu_needs_a_single_worker():
    ok = load_train_config(None, {"use_gpu": True, "resources_per_worker": {"GPU": 0.5}})
    assert ok.worker_resources() == {"GPU": 0.5}
    with pytest.raises(ConfigError, match="fractional GPUs"):
        load_train_config(None, {"num_workers": 2, "resources_per_worker": {"GPU": 0.5}})


def test_worker_resources_default():
    assert TrainConfig().worker_resources() == {"CPU": 1}
    assert TrainConfig(use_gpu=True).worker_resources() == {"GPU": 1}


def test_unreadable_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_train_config(tmp_path / "missing.yaml")
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_train_config(not_a_mapping)


def test_audit_config_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as e:
        load_audit_config(overrides={"inputs": [], "actors": 0, "gpus_per_actor": -1, "devce": "cuda"})
    message = str(e.value)
    for part in ("inputs", "registry is required", "out is required", "actors", "gpus_per_actor",
                 "did you mean 'device'"):
        assert part in message, part


def test_audit_out_may_be_a_folder_path_or_an_object_storage_uri():
    for out in ("audit/run", "s3://b/run", "gs://b/run"):
        assert load_audit_config(overrides={"inputs": ["x.jsonl"], "registry": "r", "out": out}).out == out


def test_a_stride_longer_than_the_window_is_refused():
    with pytest.raises(ConfigError, match="stride"):
        load_train_config(None, {"max_length": 16, "stride": 40})
    assert load_train_config(None, {"max_length": 16, "stride": 14}).hparams.stride == 14
