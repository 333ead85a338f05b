"""Students next to the evaluators: `evaluators: student` loads the student through the same engine,
prints its agreement, and refuses one below the floor or distilled from another registry."""

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from valuecsv_ray.backbone import quiet_hf_progress, tiny_model, tiny_tokenizer
from valuecsv_ray.cli import main
from valuecsv_ray.config import ConfigError, load_audit_config, serve_config
from valuecsv_ray.registry import manifest as reg
from valuecsv_ray.registry.students import (
    STUDENTS,
    StudentRefused,
    agreements,
    scorer_location,
    student_summary,
)
from valuecsv_ray.scoring.engine import Ensemble

TEXTS = ["坚持依法治国，建设法治社会。", "邻里之间互相帮助。", "今天天气很好，我们去公园散步。"]


def build_student(teacher: Path, name: str, agreement: dict[str, float],
                  taught_by: str | None = None) -> Path:
    """A complete student registry of a tiny multi-label BERT under teacher/students/name, with the
    given agreement per value (the rest of its record made up), written through the registry's own
    functions."""
    manifest = reg.load_registry(teacher).manifest
    taxonomy = reg.taxonomy_of(manifest)
    path = teacher / STUDENTS / name
    job = {"config": {"name": name, "backbone": "tiny", "mode": "multilabel",
                      "teacher_registry_id": taught_by or manifest["registry_id"]},
           "data": {"sha256": "0" * 64, "source": "test"}, "split": {"seed": 0, "counts": {}},
           "versions": reg.versions(), "created": time.time(), "taxonomy": taxonomy.to_dict()}
    reg.start_job(path, job)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = tiny_model(len(taxonomy.ids), multi_label=True)
    final = path / "final"
    with quiet_hf_progress():
        model.save_pretrained(final)
        tiny_tokenizer().save_pretrained(final)
    metrics = {"accuracy": 0.9, "precision": 0.5, "recall": 0.5, "f1": 0.5, "roc_auc": 0.8, "n_test": 10,
               "n_test_positive": 2}
    result = {"window": {"max_length": 512, "stride": 255, "aggregate": "max"}, "evaluators": {
        v: {"threshold": 0.5, "temperature": 2.0, "metrics": metrics, "ensemble_metrics": metrics,
            "agreement": {"decision": agreement[v], "mean_abs_dp": 0.05, "n_texts": 10}}
        for v in taxonomy.ids}}
    reg.add_evaluator(path, "multilabel", final, result, job)
    reg.write_manifest(path, ("multilabel",))
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    from tests.conftest import build_tiny_registry

    path = build_tiny_registry(tmp_path_factory.mktemp("teacher") / "tiny12")
    values = reg.load_registry(path).manifest["values"]
    build_student(path, "good", {v: 0.97 for v in values})
    build_student(path, "poor", {v: 0.99 if i else 0.80 for i, v in enumerate(values)})
    build_student(path, "stale", {v: 0.99 for v in values}, taught_by="another-registry")
    return path


def test_ensemble_is_the_registry_itself(teacher):
    assert scorer_location(str(teacher), "ensemble") == str(teacher)


def test_student_is_scored_by_the_engine_with_its_own_temperature(teacher, caplog):
    with caplog.at_level(logging.WARNING, logger="valuecsv_ray.registry.students"):
        location = scorer_location(str(teacher), "student", student="good", min_agreement=0.95)
    assert location == str(teacher / STUDENTS / "good")
    assert "agreement with the ensemble on held-out text: min 0.970" in caplog.text
    engine = Ensemble.from_registry(location, device="cpu")
    scores = engine.score(TEXTS)
    assert len(engine.groups) == 1 and len(engine.groups[0]["heads"]) == 1  # one model for every value
    model, tokenizer = engine.groups[0]["heads"][0].model, engine.tokenizer.groups[0]["tokenizer"]
    with torch.inference_mode():
        logits = model(**tokenizer(TEXTS, return_tensors="pt", padding=True)).logits
    expected = torch.sigmoid(logits / 2.0).numpy()  # temperature 2 from the student's record
    np.testing.assert_allclose(scores.probs, expected, atol=1e-5)
    assert scores.value_ids == reg.load_registry(teacher).taxonomy.ids


def test_student_below_the_floor_is_refused_naming_the_value(teacher):
    values = reg.load_registry(teacher).manifest["values"]
    with pytest.raises(StudentRefused, match=rf"{values[0]} 0\.800"):
        scorer_location(str(teacher), "student", student="poor", min_agreement=0.95)
    assert scorer_location(str(teacher), "student", student="poor", min_agreement=0.8).endswith("poor")


def test_student_of_another_registry_or_missing_is_refused(teacher):
    with pytest.raises(StudentRefused, match="distilled from another-registry"):
        scorer_location(str(teacher), "student", student="stale", min_agreement=0.0)
    with pytest.raises(StudentRefused, match="valuecsv-ray distill --registry"):
        scorer_location(str(teacher), "student", student="nobody")


def test_summary_and_agreements(teacher):
    manifest = reg.load_registry(teacher / STUDENTS / "poor").manifest
    assert min(agreements(manifest).values()) == pytest.approx(0.8)
    assert "gold macro F1 0.500 (ensemble 0.500)" in student_summary(manifest)


def test_evaluators_is_one_setting_of_audit_and_serve():
    audit = load_audit_config(overrides={"inputs": ["a.jsonl"], "registry": "r", "out": "o",
                                         "evaluators": "student", "min_agreement": 0.9})
    assert audit.scorer.kwargs() == {"evaluators": "student", "student": "student", "min_agreement": 0.9}
    assert serve_config({"registry": "r", "evaluators": "student"}).scorer.evaluators == "student"
    with pytest.raises(ConfigError, match="evaluators must be one of") as e:
        serve_config({"registry": "r", "evaluators": "teacher", "min_agreement": 2})
    assert "min_agreement must be in [0, 1]" in str(e.value)


def test_score_cli_with_the_student(teacher):
    runner = CliRunner()
    ok = runner.invoke(main, ["score", "--registry", str(teacher), "--evaluators", "student", "--student",
                              "good", TEXTS[0]])
    assert ok.exit_code == 0, ok.output
    assert "above the evaluator's threshold" in ok.output
    refused = runner.invoke(main, ["score", "--registry", str(teacher), "--evaluators", "student",
                                   "--student", "poor", TEXTS[0]])
    assert refused.exit_code == 1 and "below the floor 0.95" in refused.output


def test_serve_app_refuses_a_student_below_the_floor_before_any_replica(teacher):
    from valuecsv_ray.serve import app_builder

    with pytest.raises(StudentRefused, match="below the floor"):
        app_builder({"registry": str(teacher), "evaluators": "student", "student": "poor"})
    assert app_builder({"registry": str(teacher), "evaluators": "student", "student": "good"}) is not None


def test_registry_show_prints_a_students_agreement(teacher):
    shown = CliRunner().invoke(main, ["registry", "show", str(teacher / STUDENTS / "poor")])
    assert shown.exit_code == 0, shown.output
    assert "against that ensemble" in shown.output and "min 0.800" in shown.output
    plain = CliRunner().invoke(main, ["registry", "show", str(teacher)])
    assert plain.exit_code == 0 and "against that ensemble" not in plain.output
