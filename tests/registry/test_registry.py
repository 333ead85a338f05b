"""Registry folders: refusing incomplete ones, the taxonomy they record, resuming, the metrics table."""

import json

import pytest

from valuecsv_ray.config import load_train_config
from valuecsv_ray.registry.manifest import (
    EVALUATORS,
    JOB_FILE,
    MANIFEST,
    MODEL_FILES,
    RegistryError,
    add_evaluator,
    format_metrics_table,
    load_registry,
    metrics_table,
    start_job,
    taxonomy_of,
    write_manifest,
)
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy

TAXONOMY = load_taxonomy()
VALUES = TAXONOMY.labels
SHOWN = (VALUES[0], VALUES[4], VALUES[11])
TOY = Taxonomy.from_dict({
    "name": "toy", "group_kind": "tier", "groups": ["inner", "outer"],
    "labels": [{"id": "care", "en": "Care", "zh": "关爱", "group": "inner", "column": "care_col"},
               {"id": "thrift", "en": "Thrift", "zh": "节俭", "group": "inner", "column": "thrift_col"},
               {"id": "courage", "en": "Courage", "zh": "勇敢", "group": "outer", "column": "courage_col"}]})


def _metrics(f1: float, auc: float | None) -> dict:
    return {
        "accuracy": 0.9,
        "precision": 0.8,
        "recall": 0.7,
        "f1": f1,
        "roc_auc": auc,
        "n_test": 500,
        "n_test_positive": 40,
    }


def _manifest(calibrated: bool = True) -> dict:
    """A manifest of the three SHOWN evaluators (no recorded taxonomy: the default one applies)."""
    aucs = (0.95, 0.85, None)
    calibration = [{"bins": 15, "ece_before": 0.10 + i / 10, "ece_after": 0.02 + i / 100} for i in range(3)]
    return {
        "registry_id": "demo-0123456789",
        "mode": "binary",
        "backbone": "tiny",
        "missing": [],
        "values": [v.id for v in SHOWN],
        "evaluators": {
            v.id: {
                "path": f"{EVALUATORS}/{v.id}",
                "output_index": 1,
                "threshold": 0.4 + i / 10,
                "metrics": _metrics(0.5 + i / 10, aucs[i]),
                **({"temperature": 1.0 + i, "calibration": calibration[i]} if calibrated else {}),
            }
            for i, v in enumerate(SHOWN)
        },
    }


def _write_registry(root, manifest: dict, skip: str | None = None):
    for ev in manifest["evaluators"].values():
        folder = root / ev["path"]
        folder.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            if name != skip:
                (folder / name).write_text("{}", encoding="utf-8")
    (root / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return root


def test_empty_folder_is_not_a_registry(tmp_path):
    with pytest.raises(RegistryError) as e:
        load_registry(tmp_path)
    assert MANIFEST in str(e.value)
    assert f"valuecsv-ray train --name {tmp_path.name}" in str(e.value)


def test_missing_weights_are_named(tmp_path):
    _write_registry(tmp_path, _manifest(), skip="model.safetensors")
    with pytest.raises(RegistryError) as e:
        load_registry(tmp_path)
    for v in SHOWN:
        assert str(tmp_path / EVALUATORS / v.id / "model.safetensors") in str(e.value)
    assert "valuecsv-ray train" in str(e.value)


def test_unfinished_evaluator_and_missing_threshold_are_named(tmp_path):
    manifest = _manifest()
    manifest["missing"] = [VALUES[6].id]
    manifest["evaluators"][SHOWN[0].id]["threshold"] = None
    _write_registry(tmp_path, manifest)
    with pytest.raises(RegistryError) as e:
        load_registry(tmp_path)
    assert f"evaluator '{VALUES[6].id}' never finished training" in str(e.value)
    assert f"{SHOWN[0].id}: no decision threshold" in str(e.value)


def test_complete_registry_loads(tmp_path):
    registry = load_registry(_write_registry(tmp_path, _manifest()))
    assert registry.registry_id == "demo-0123456789"
    assert registry.evaluator_dir(SHOWN[1].id) == tmp_path / EVALUATORS / SHOWN[1].id


def test_metrics_table_and_its_text():
    table = metrics_table(_manifest())
    assert list(table.columns) == ["value", "level", "acc", "P", "R", "F1", "AUC", "ECE", "ECE_T", "T",
                                   "threshold", "n_test", "n_pos"]
    assert len(table) == len(SHOWN)
    assert list(table["F1"]) == pytest.approx([0.5, 0.6, 0.7])
    assert list(table["ECE"]) == pytest.approx([0.1, 0.2, 0.3])
    assert list(table["ECE_T"]) == pytest.approx([0.02, 0.03, 0.04])
    assert list(table["T"]) == pytest.approx([1.0, 2.0, 3.0])
    assert list(table["level"]) == [v.group for v in SHOWN]
    text = format_metrics_table(table)
    assert "macro mean" in text
    for v in SHOWN:
        assert v.zh in text and v.en in text and v.group in text
    mean_row = next(line for line in text.splitlines() if "macro mean" in line).split()
    assert "0.600" in mean_row  # mean F1
    assert "0.900" in mean_row  # mean AUC over the two evaluators that have one
    assert mean_row[-4:] == ["0.200", "0.030", "2.000", "0.500"]  # ECE, ECE_T, T, threshold
    assert "-" in text.splitlines()[3].split()  # the missing AUC of the third evaluator


def test_manifest_without_calibration_shows_dashes():
    text = format_metrics_table(metrics_table(_manifest(calibrated=False)))
    header, *rows, mean_row = text.splitlines()
    assert header.split()[7:10] == ["ECE", "ECE_T", "T"]
    assert len(rows) == len(SHOWN)
    for row in rows:  # value names hold a space, so count from the end: ... ECE ECE_T T threshold n n_pos
        assert row.split()[-6:-3] == ["-", "-", "-"], row
    assert mean_row.split()[-4:] == ["-", "-", "-", "0.500"]  # the mean row has no n_test, n_pos


def test_old_manifest_without_taxonomy_uses_the_default_restricted_to_its_values():
    taxonomy = taxonomy_of(_manifest())
    assert taxonomy.labels == SHOWN
    assert taxonomy.groups == ("national", "societal", "personal")
    assert (taxonomy.name, taxonomy.group_kind) == (TAXONOMY.name, "level")


# ---------------------------------------------------------------- a registry written by its own functions


def _job(recorded: Taxonomy | None, **settings) -> dict:
    """A job record as the runner writes it (resolved flat config; taxonomy recorded unless None)."""
    cfg = load_train_config(None, {"name": "toyjob", **settings})
    job = {"config": cfg.to_dict(), "data": {"sha256": "ab" * 32},
           "split": {"seed": 42, "counts": {}}, "versions": {}, "created": 0.0}
    return {**job, "taxonomy": recorded.to_dict()} if recorded else job


def _add(root, value_id: str, job: dict, tmp_path) -> None:
    built = tmp_path / "built" / value_id
    built.mkdir(parents=True)
    for name in MODEL_FILES[:-1]:
        (built / name).write_text("{}", encoding="utf-8")
    result = {"evaluators": {value_id: {"threshold": 0.5, "temperature": 1.5, "metrics": _metrics(0.6, 0.8),
                                        "calibration": {"bins": 15, "ece_before": 0.2, "ece_after": 0.1}}},
              "window": {"max_length": 128, "stride": 63, "aggregate": "max"}}
    add_evaluator(root, value_id, built, result, job)


def test_manifest_records_the_jobs_taxonomy(tmp_path):
    root = tmp_path / "toyjob"
    job = _job(TOY)
    start_job(root, job)
    for value_id in ("courage", "care"):
        _add(root, value_id, job, tmp_path)
    manifest = write_manifest(root, TOY.ids)
    assert manifest["taxonomy"] == TOY.to_dict()
    assert manifest["values"] == ["care", "courage"]  # taxonomy order
    assert manifest["missing"] == ["thrift"] and not manifest["complete"]
    ev = manifest["evaluators"]["care"]
    assert (ev["temperature"], ev["calibration"]["ece_after"], ev["window"]["stride"]) == (1.5, 0.1, 63)

    with pytest.raises(RegistryError, match="evaluator 'thrift' never finished training"):
        load_registry(root)
    _add(root, "thrift", job, tmp_path)
    write_manifest(root, TOY.ids)
    registry = load_registry(root)
    assert registry.taxonomy == TOY
    table = metrics_table(registry.manifest)
    assert list(table["tier"]) == ["inner", "inner", "outer"]
    assert list(table["value"]) == ["Care 关爱", "Thrift 节俭", "Courage 勇敢"]


def test_manifest_without_a_job_taxonomy_uses_the_default(tmp_path):
    root = tmp_path / "toyjob"
    job = _job(None)
    start_job(root, job)
    _add(root, SHOWN[2].id, job, tmp_path)
    _add(root, SHOWN[0].id, job, tmp_path)
    manifest = write_manifest(root, (SHOWN[0].id, SHOWN[2].id))
    assert manifest["taxonomy"] == TAXONOMY.to_dict()
    assert manifest["values"] == [SHOWN[0].id, SHOWN[2].id]
    assert load_registry(root).taxonomy.labels == (SHOWN[0], SHOWN[2])


def test_rerun_may_change_runtime_settings_only(tmp_path):
    root = tmp_path / "toyjob"
    start_job(root, _job(TOY))
    start_job(root, _job(TOY, num_workers=2, max_concurrent=1, torch_threads=1, runs_dir="elsewhere"))
    with pytest.raises(RegistryError) as e:
        start_job(root, _job(TOY, max_epochs=3, aggregate="mean", num_workers=2))
    message = str(e.value)
    assert "different settings: aggregate, max_epochs." in message  # num_workers is a runtime knob
    assert "'toyjob'" in message and "--name" in message
    changed_data = _job(TOY)
    changed_data["data"] = {"sha256": "cd" * 32}
    with pytest.raises(RegistryError, match=r"different settings: data \(its sha256 differs\)\."):
        start_job(root, changed_data)
    assert json.loads((root / JOB_FILE).read_text(encoding="utf-8"))["config"]["num_workers"] == 1


def test_rerun_of_a_job_recorded_before_a_setting_existed_resumes(tmp_path, caplog):
    root = tmp_path / "toyjob"
    older = _job(TOY)
    del older["config"]["precision"]  # job.json written before `precision` was a setting
    start_job(root, older)
    with caplog.at_level("WARNING", logger="valuecsv_ray.registry"):
        start_job(root, _job(TOY, precision="bf16"))
    assert "before the settings precision existed" in caplog.text and "precision='bf16'" in caplog.text
    assert json.loads((root / JOB_FILE).read_text(encoding="utf-8"))["config"]["precision"] == "bf16"
    with pytest.raises(RegistryError, match="different settings: precision"):  # recorded from now on
        start_job(root, _job(TOY, precision="fp32"))
