"""Ray Train, for real on a local Ray instance: concurrency, checkpoints, restarts, resume."""

import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from valuecsv_ray.cli import main
from valuecsv_ray.config import load_train_config
from valuecsv_ray.registry.manifest import EVALUATOR_FILE, EVALUATORS, RegistryError, load_registry
from valuecsv_ray.taxonomy import load_taxonomy
from valuecsv_ray.train.runner import train_all

VALUE_IDS = load_taxonomy().ids

pytestmark = pytest.mark.ray
THREE = ("prosperity", "freedom", "rule_of_law")


def _config(tmp, shared_data, **overrides):
    settings = dict(
        runs_dir=str(tmp), data=str(shared_data / "ValueCSV5000.xlsx"), limit_rows=240,
        backbone="tiny", max_length=64, batch_size=16, learning_rate=1e-3, max_epochs=4,
        patience=5, resources_per_worker={"CPU": 0.5}, max_concurrent=3, torch_threads=1,
    )
    return load_train_config(None, {**settings, **overrides})


@pytest.fixture(scope="module")
def three(tmp_path_factory, shared_data, ray_local):
    """Three evaluators trained concurrently on a ValueCSV5000 subset."""
    cfg = _config(tmp_path_factory.mktemp("runs"), shared_data, name="three", values=",".join(THREE))
    started = time.time()
    path = train_all(cfg)
    return cfg, path, time.time() - started


def test_three_evaluators_train_concurrently(three):
    _, path, _ = three
    evaluators = load_registry(path).manifest["evaluators"]
    starts = [e["train_start"] for e in evaluators.values()]
    ends = [e["train_end"] for e in evaluators.values()]
    assert max(starts) < min(ends), f"training intervals do not all overlap: {starts} {ends}"


def test_training_loss_falls(three):
    _, path, _ = three
    for value_id, ev in load_registry(path).manifest["evaluators"].items():
        losses = [h["train_loss"] for h in ev["history"]]
        assert len(losses) == 4
        assert losses[-1] < losses[0], f"{value_id}: train loss did not fall: {losses}"


def test_history_records_throughput_step_losses_and_precision(three):
    """Each epoch's wall time, samples/s and per-step losses reach the manifest; on CPU, 'auto' is fp32."""
    cfg, path, _ = three
    manifest = load_registry(path).manifest
    steps = math.ceil(manifest["split"]["counts"]["train"] / cfg.hparams.batch_size)  # one worker
    for value_id, ev in manifest["evaluators"].items():
        for h in ev["history"]:
            assert len(h["step_losses"]) == steps, value_id
            assert all(x == round(x, 5) and x > 0 for x in h["step_losses"])
            assert np.mean(h["step_losses"]) == pytest.approx(h["train_loss"], abs=1e-4)
            assert h["train_s"] > 0
            assert h["samples_per_s"] == pytest.approx(manifest["split"]["counts"]["train"] / h["train_s"],
                                                       rel=0.01)
        assert [a["precision"] for a in ev["attempts"]] == ["fp32"]


def test_evaluators_load_with_plain_from_pretrained(three):
    _, path, _ = three
    registry = load_registry(path)
    for value_id in THREE:
        folder = registry.evaluator_dir(value_id)
        assert (folder / "model.safetensors").is_file()
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        logits = model(**tokenizer(["依法治国，公正司法。"], return_tensors="pt")).logits
        assert logits.shape == (1, 2)
        assert model.config.id2label[1] == value_id


def test_manifest_is_complete(three):
    cfg, path, _ = three
    m = load_registry(path).manifest
    assert m["complete"] and m["values"] == list(THREE)
    for key in ("registry_id", "backbone", "data", "split", "config", "versions", "created"):
        assert m[key], key
    assert m["data"]["n_samples"] == 240 and len(m["data"]["sha256"]) == 64
    assert m["split"]["seed"] == cfg.split_seed and sum(m["split"]["counts"].values()) == 240
    assert set(m["versions"]) >= {"valuecsv_ray", "torch", "transformers", "ray", "python"}
    assert m["config"]["max_length"] == 64
    for ev in m["evaluators"].values():
        assert 0 < ev["threshold"] < 1
        assert set(ev["metrics"]) >= {"accuracy", "precision", "recall", "f1", "roc_auc", "n_test"}
        assert ev["train_start"] < ev["train_end"]
    split = json.loads((path / "split.json").read_text())
    assert sorted(sum(split["indices"].values(), [])) == list(range(240))


def test_manifest_metrics_equal_the_engine_on_the_test_split(three, shared_data):
    """One scoring path: the test metrics in the manifest are what Ensemble.score gives on the
    test split at the manifest's threshold, texts longer than the window included."""
    import numpy as np

    from valuecsv_ray.scoring.engine import Ensemble
    from valuecsv_ray.train.annotated import load_annotated
    from valuecsv_ray.train.metrics import binary_metrics, expected_calibration_error

    cfg, path, _ = three
    registry = load_registry(path)
    data = load_annotated(cfg.data, limit=cfg.limit_rows)
    test = json.loads((path / "split.json").read_text())["indices"]["test"]
    scores = Ensemble.from_registry(path, device="cpu").score([data.texts[i] for i in test])
    assert (scores.windows > 1).sum() >= len(test) // 2, "the test split should hold multi-window texts"
    columns, checked = load_taxonomy().ids, []  # the data's label columns: the full taxonomy
    for j, value_id in enumerate(registry.manifest["values"]):
        ev = registry.manifest["evaluators"][value_id]
        assert ev["window"] == {"max_length": 64, "stride": 31, "aggregate": "max"}
        truth = data.labels[test, columns.index(value_id)]
        # a model that collapsed to one output on 240 rows can put a test text within float
        # noise (reduction order differs between processes) of its threshold: not comparable
        if np.abs(scores.probs[:, j] - ev["threshold"]).min() < 1e-7:
            continue
        checked.append(value_id)
        recomputed = binary_metrics(truth, scores.probs[:, j], ev["threshold"])
        for key, value in ev["metrics"].items():
            assert recomputed[key] == pytest.approx(value, abs=1e-6), (value_id, key)
        ece = expected_calibration_error(truth, scores.probs[:, j])
        assert ece == pytest.approx(ev["calibration"]["ece_after"], abs=1e-6)
        assert 0.05 <= ev["temperature"] <= 20 and np.isfinite(ev["calibration"]["ece_before"])
        long = ev["long_texts"]
        assert long["n_texts"] >= len(test) // 3 and long["mean_windows"] > 1
        assert set(long) >= {"single", "max", "mean"} and 0 <= long["max"]["positive_rate"] <= 1
    assert len(checked) >= 2, f"only {checked} could be compared"


def test_rerun_of_finished_job_does_not_retrain(three):
    cfg, path, _ = three
    stamps = {v: (path / EVALUATORS / v / EVALUATOR_FILE).stat().st_mtime_ns for v in THREE}
    checkpoints = sorted(p.name for p in (path / "_ray").rglob("epoch_*"))
    train_all(cfg)
    # a retrained evaluator would be written again, and its epochs checkpointed again
    assert stamps == {v: (path / EVALUATORS / v / EVALUATOR_FILE).stat().st_mtime_ns for v in THREE}
    assert checkpoints == sorted(p.name for p in (path / "_ray").rglob("epoch_*"))


def test_rerun_with_changed_settings_is_refused(three, shared_data):
    cfg, path, _ = three
    changed = _config(path.parent, shared_data, name=cfg.name, values=",".join(THREE), max_length=32)
    with pytest.raises(RegistryError, match="max_length"):
        train_all(changed)


def test_registry_show_prints_the_metrics_table(three):
    _, path, _ = three
    result = CliRunner().invoke(main, ["registry", "show", str(path)])
    assert result.exit_code == 0, result.output
    for text in ("Prosperity 富强", "Freedom 自由", "Rule of Law 法治", "macro mean", "AUC", "ECE", "ECE_T",
                 "n_test"):
        assert text in result.output


def _registered(run: Path, checkpoint: str) -> bool:
    try:
        snapshot = json.loads((run / "checkpoint_manager_snapshot.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return any(r["checkpoint_dir_name"] == checkpoint for r in snapshot["checkpoint_results"])


def test_killed_worker_restarts_from_checkpoint(tmp_path, shared_data, ray_local):
    cfg = _config(tmp_path, shared_data, name="killed", values="justice", max_length=128,
                  max_epochs=5, max_failures=1, resources_per_worker={"CPU": 1})
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(path=train_all(cfg)))
    thread.start()
    run = tmp_path / "killed" / "_ray" / "killed-justice"
    first = run / "epoch_001"
    deadline = time.time() + 300
    # kill only once Ray Train's controller has registered the checkpoint (its snapshot lists
    # it): a folder on disk that the controller has not recorded yet is not restored from
    while not _registered(run, first.name) and time.time() < deadline and thread.is_alive():
        time.sleep(0.2)
    assert _registered(run, first.name), "no first checkpoint was registered"
    pid = json.loads((first / "progress.json").read_text())["attempts"][-1]["pid"]
    os.kill(pid, signal.SIGKILL)  # the rank-0 training worker of this run
    thread.join(timeout=600)
    assert "path" in outcome, "training did not complete after the worker was killed"
    ev = load_registry(outcome["path"]).manifest["evaluators"]["justice"]
    assert len(ev["attempts"]) == 2, ev["attempts"]
    assert ev["attempts"][1]["start_epoch"] >= 1, "restart did not resume from a checkpoint"
    assert [h["epoch"] for h in ev["history"]] == list(range(5)), "epochs repeated or lost"


def test_multilabel_mode_produces_a_loadable_registry(tmp_path, shared_data, ray_local):
    args = ["train", "--mode", "multilabel", "--name", "ml", "--runs-dir", str(tmp_path),
            "--data", str(shared_data / "ValueCSV5000.xlsx"), "--limit-rows", "240",
            "--max-epochs", "2", "--max-length", "64", "--set", "learning_rate=1e-3",
            "--set", "resources_per_worker={CPU: 1}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "macro mean" in result.output
    registry = load_registry(tmp_path / "ml")
    assert registry.manifest["mode"] == "multilabel" and registry.manifest["values"] == list(VALUE_IDS)
    folder = registry.evaluator_dir("freedom")
    assert folder.name == "multilabel"
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.config.num_labels == 12
    assert model.config.problem_type == "multi_label_classification"
    assert [model.config.id2label[i] for i in range(12)] == list(VALUE_IDS)
    indices = [registry.manifest["evaluators"][v]["output_index"] for v in VALUE_IDS]
    assert indices == list(range(12))
