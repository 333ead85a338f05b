"""Registry folders: refusing incomplete ones, and the metrics table."""

import json

import pytest

from valuecsv_ray.registry import (
    EVALUATORS,
    MANIFEST,
    MODEL_FILES,
    RegistryError,
    format_metrics_table,
    load_registry,
    metrics_table,
)
from valuecsv_ray.taxonomy import VALUES

SHOWN = (VALUES[0], VALUES[4], VALUES[11])


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


def _manifest() -> dict:
    aucs = (0.95, 0.85, None)
    return {
        "registry_id": "demo-0123456789",
        "mode": "binary",
        "backbone": "tiny",
        "missing": [],
        "evaluators": {
            v.id: {
                "path": f"{EVALUATORS}/{v.id}",
                "output_index": 1,
                "threshold": 0.4 + i / 10,
                "metrics": _metrics(0.5 + i / 10, aucs[i]),
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
    assert len(table) == len(SHOWN)
    assert list(table["F1"]) == pytest.approx([0.5, 0.6, 0.7])
    text = format_metrics_table(table)
    assert "macro mean" in text
    for v in SHOWN:
        assert v.zh in text and v.en in text and v.level.value in text
    mean_row = next(line for line in text.splitlines() if "macro mean" in line)
    assert "0.600" in mean_row  # mean F1
    assert "0.900" in mean_row  # mean AUC over the two evaluators that have one
    assert "-" in text.splitlines()[3].split()  # the missing AUC of the third evaluator
