"""Distillation for real on a local Ray instance: teacher probabilities through the audit (cached
as Parquet and reused by a second student), the student fitted with Ray Train and written next to
the evaluators, then scored by the engine and by the audit with `evaluators: student`."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from valuecsv_ray.config import load_audit_config, load_distill_config
from valuecsv_ray.registry import manifest as reg
from valuecsv_ray.registry.students import STUDENTS, scorer_location
from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.testing.synthetic import random_registry
from valuecsv_ray.train.annotated import load_annotated
from valuecsv_ray.train.distill import CACHE, distill
from valuecsv_ray.train.split import make_split

pytestmark = pytest.mark.ray


def teacher_on_sample(path: Path) -> Path:
    """A random tiny 12-evaluator registry recorded as trained on the shipped sample (its sha256
    and a split), so a student can take the sample's gold labels."""
    random_registry(path, size="tiny", seed=1)
    data = load_annotated("sample")
    job = json.loads((path / reg.JOB_FILE).read_text(encoding="utf-8"))
    job["config"]["data"] = "sample"
    job["data"] |= {"sha256": data.sha256, "source": data.source, "n_samples": len(data)}
    reg.write_json(path / reg.JOB_FILE, job)
    reg.write_json(path / reg.SPLIT_FILE, make_split(data.labels, 0).to_json())
    reg.write_manifest(path, tuple(reg.load_registry(path).manifest["values"]))
    return path


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("distill")
    teacher = teacher_on_sample(tmp / "teacher")
    texts = load_annotated("sample").texts
    corpus = tmp / "answers.jsonl"
    with corpus.open("w", encoding="utf-8") as fh:
        for i in range(80):  # unlabeled text: halves of two sample texts joined
            a, b = texts[i], texts[(i * 7 + 3) % len(texts)]
            row = {"id": f"c{i}", "model": "m", "response": a[: len(a) // 2] + b[len(b) // 2 :]}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    settings = {"registry": str(teacher), "corpus": [str(corpus)], "backbone": "tiny", "max_length": 64,
                "batch_size": 16, "learning_rate": 1e-3, "max_epochs": 2, "torch_threads": 1,
                "resources_per_worker": {"CPU": 0.5}, "cpus_per_actor": 0.5}
    student = distill(load_distill_config(overrides=settings))
    return teacher, corpus, student, settings


def test_student_is_a_registry_next_to_the_evaluators(distilled):
    teacher, _, student, _ = distilled
    assert student == teacher / STUDENTS / "student"
    manifest = reg.load_registry(student).manifest
    teacher_manifest = reg.load_registry(teacher).manifest
    assert manifest["mode"] == "multilabel" and manifest["backbone"] == "tiny"
    assert manifest["config"]["teacher_registry_id"] == teacher_manifest["registry_id"]
    assert manifest["values"] == teacher_manifest["values"]
    counts = manifest["split"]["counts"]
    held_out = counts["test"]["annotated"] + counts["test"]["corpus"]
    assert counts["test"]["corpus"] > 0 and counts["train"]["corpus"] > counts["test"]["corpus"]
    assert sum(sum(c.values()) for c in counts.values()) == 240 + 80
    for ev in manifest["evaluators"].values():
        assert ev["agreement"]["n_texts"] == held_out and 0 <= ev["agreement"]["decision"] <= 1
        assert ev["metrics"]["n_test"] == counts["test"]["annotated"] == ev["ensemble_metrics"]["n_test"]
        assert ev["epochs_run"] == 2 and ev["temperature"] > 0


def test_engine_scores_with_the_student_as_recorded(distilled):
    teacher, _, student, _ = distilled
    location = scorer_location(str(teacher), "student", min_agreement=0.0)
    engine = Ensemble.from_registry(location, device="cpu")
    texts = load_annotated("sample").texts[:20]
    scores = engine.score(texts)
    assert engine.registry.registry_id == reg.load_registry(student).registry_id
    assert scores.probs.shape == (20, 12) and np.isfinite(scores.probs).all()
    assert not np.allclose(scores.probs, scores.probs[0])  # an encoder that reads the text


def test_second_student_reuses_the_cached_teacher_probabilities(distilled):
    teacher, _, _, settings = distilled
    cache = teacher / CACHE / reg.load_registry(teacher).registry_id
    parts = sorted(cache.rglob("scores/*.parquet"))
    assert len({p.parent.parent.name for p in parts}) == 2  # gold/ and corpus-<key>/
    before = {p: p.stat().st_mtime_ns for p in parts}
    second = distill(load_distill_config(overrides={**settings, "name": "second", "max_epochs": 1}))
    assert reg.load_registry(second).manifest["evaluators"]["freedom"]["epochs_run"] == 1
    assert {p: p.stat().st_mtime_ns for p in sorted(cache.rglob("scores/*.parquet"))} == before


def test_audit_with_evaluators_student(distilled, tmp_path):
    from valuecsv_ray.audit.pipeline import run_audit

    teacher, corpus, student, _ = distilled
    cfg = load_audit_config(overrides={"inputs": [str(corpus)], "registry": str(teacher),
                                       "out": str(tmp_path / "audit"), "evaluators": "student",
                                       "min_agreement": 0.0, "cpus_per_actor": 0.5})
    result = run_audit(cfg)
    assert result.summary["rows_scored"] == 80
    table = pq.read_table(tmp_path / "audit" / "scores")
    assert set(table["registry_id"].to_pylist()) == {reg.load_registry(student).registry_id}


def test_bench_reproduces_the_recorded_agreement_on_the_gold_test_texts(distilled):
    import importlib.util

    teacher, _, student, _ = distilled
    path = Path(__file__).resolve().parents[2] / "bench" / "student_vs_ensemble.py"
    spec = importlib.util.spec_from_file_location("student_vs_ensemble", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.measure(teacher, [student], repeats=1)
    rows = result["registries"][str(student)]["rows"]
    recorded = reg.load_registry(student).manifest["evaluators"]
    assert result["texts"] == recorded["freedom"]["agreement"]["gold_test"]["n_texts"]
    for row in rows:  # the engine on the same texts, as training measured them
        ev = recorded[row["value"]]
        assert row["agreement"] == pytest.approx(ev["agreement"]["gold_test"]["decision"])
        assert row["mean_abs_dp"] == pytest.approx(ev["agreement"]["gold_test"]["mean_abs_dp"], abs=1e-5)
        assert row["f1"] == pytest.approx(ev["metrics"]["f1"])
    assert "| macro |" in bench.markdown(result)
