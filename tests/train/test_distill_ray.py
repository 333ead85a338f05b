"""Distillation for real on a local Ray instance: teacher probabilities through the audit (cached
as Parquet and reused by a second student), the student fitted with Ray Train and written next to
the evaluators, then scored by the engine, by the audit and by `serve run` of the shipped Serve YAML
with `evaluators: student`."""

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from valuecsv_ray.backbone import tiny_tokenizer
from valuecsv_ray.config import Hyperparameters, load_audit_config, load_distill_config
from valuecsv_ray.registry import manifest as reg
from valuecsv_ray.registry.students import STUDENTS, scorer_location
from valuecsv_ray.scoring.client import request_json, score_texts
from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.train.annotated import load_annotated
from valuecsv_ray.train.distill import CACHE, distill
from valuecsv_ray.train.distill_worker import StudentSpec, train_dataset
from valuecsv_ray.train.loop import encode

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, ray_local, teacher_on_sample):
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
    assert manifest["split"]["left_out"] == {"corpus_equal_to_annotated": 0}
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


def test_window_pieces_when_no_text_is_longer_than_a_window(distilled):
    """`window_pieces` on texts that all fit one window: no pieces, and the student is still made
    (the Quickstart's registry with configs/distill/tiny.yaml, max length 512)."""
    teacher, _, _, settings = distilled
    longest = max(len(t) for t in load_annotated("sample").texts)
    student = distill(load_distill_config(overrides={**settings, "name": "nopieces", "window_pieces": True,
                                                     "max_length": longest + 2, "max_epochs": 1}))
    manifest = reg.load_registry(student).manifest
    assert "pieces" not in manifest["split"]["counts"]["train"]
    assert manifest["split"]["counts"]["train"]["annotated"] > 0

def _steps_per_epoch(student: Path) -> list[int]:
    record = json.loads((student / "evaluators" / "multilabel" / "evaluator.json").read_text())
    return [len(epoch["step_losses"]) for epoch in record["history"]]


def test_every_train_row_streams_through_ray_data_once_an_epoch(distilled):
    teacher, _, student, settings = distilled
    train_rows = sum(reg.load_registry(student).manifest["split"]["counts"]["train"].values())
    assert _steps_per_epoch(student) == [math.ceil(train_rows / settings["batch_size"])] * 2


def test_two_workers_stream_equal_shards(distilled):
    """DDP over two workers: each streams an equal share of the train dataset (the same number of
    steps, or the gradient all-reduce would hang), and the student is made."""
    teacher, _, _, settings = distilled
    student = distill(load_distill_config(overrides={
        **settings, "name": "ddp", "num_workers": 2, "max_epochs": 1,
        "resources_per_worker": {"CPU": 0.25}}))
    train_rows = sum(reg.load_registry(student).manifest["split"]["counts"]["train"].values())
    assert _steps_per_epoch(student) == [math.ceil(train_rows // 2 / settings["batch_size"])]


def test_train_dataset_holds_the_train_part_tokenized_and_the_workers_config_does_not(ray_local):
    texts = [f"第{i}条新闻：坚持依法治国" * (i % 5 + 1) for i in range(300)]
    rng = np.random.default_rng(0)
    teacher_p = rng.random((300, 12))
    gold = np.where(np.arange(300)[:, None] < 100, rng.integers(0, 2, (300, 12)), np.nan)
    spec = StudentSpec(value_ids=[f"v{j}" for j in range(12)], texts={"train": texts, "validation": [],
                       "test": []}, teacher={"train": teacher_p.tolist(), "validation": [], "test": []},
                       gold={"train": gold.tolist(), "validation": [], "test": []},
                       teacher_thresholds=[0.5] * 12, gold_weight=0.1,
                       hparams=Hyperparameters(max_length=16, seed=3))
    tokenizer = tiny_tokenizer()
    rows = train_dataset(spec, tokenizer).take_all()
    assert len(rows) == 300
    expected = {tuple(ids): i for i, ids in enumerate(encode(tokenizer, texts, 16))}
    order = [expected[tuple(row["input_ids"])] for row in rows]
    assert sorted(order) == list(range(300)) and order != list(range(300))  # all rows, shuffled
    targets = spec.targets(spec.part("train"))
    for row, i in zip(rows, order, strict=True):
        np.testing.assert_allclose(row["targets"], targets[i], rtol=1e-6)
    config = spec.streamed().to_config()
    assert config["texts"]["train"] == [] and config["teacher"]["train"] == [] and config["train_rows"] == 300


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


def test_serve_run_of_the_shipped_yaml_with_the_student(distilled, tmp_path, serve_run):
    """`serve run` of serve_configs/ensemble.yaml with `evaluators: student`: the replica holds the
    student (its registry id), and the endpoint answers with the engine's scores of the student."""
    teacher, _, student, _ = distilled
    config = yaml.safe_load((ROOT / "serve_configs" / "ensemble.yaml").read_text())
    config["applications"][0]["args"] |= {"registry": str(teacher), "evaluators": "student",
                                          "min_agreement": 0.0}
    texts = load_annotated("sample").texts[:5]
    with serve_run(config, tmp_path) as url:
        health = request_json(url + "/healthz")
        served = score_texts(url, texts)
    engine = Ensemble.from_registry(scorer_location(str(teacher), "student", min_agreement=0.0), device="cpu")
    assert health["registry_id"] == engine.registry.registry_id == reg.load_registry(student).registry_id
    expected = engine.score(texts)
    served_probs = np.array([[r["probs"][v] for v in expected.value_ids] for r in served])
    np.testing.assert_allclose(served_probs, expected.probs, atol=1e-5)


def test_student_of_a_registry_on_s3_is_published_there(distilled, s3, tmp_path, monkeypatch,
                                                        teacher_on_sample):
    """A teacher at s3://...: the teacher's probabilities are cached, the student's checkpoints and
    the finished student go under its URI, where `evaluators: student` finds and loads it; a second
    student made on another machine (an empty local cache) reuses the cached probabilities."""
    import pyarrow.fs as pafs

    from valuecsv_ray.registry.store import publish_registry

    _, corpus, _, settings = distilled
    monkeypatch.setenv("VALUECSV_CACHE", str(tmp_path / "cache"))
    s3.create_dir("distill")
    publish_registry(teacher_on_sample(tmp_path / "teacher"), "s3://distill/runs/teacher")
    uri = distill(load_distill_config(overrides={**settings, "registry": "s3://distill/runs/teacher",
                                                 "max_epochs": 1}))
    assert uri == "s3://distill/runs/teacher/students/student"
    listed = s3.get_file_info(pafs.FileSelector("distill/runs/teacher/students", recursive=True))
    names = {info.path for info in listed}
    assert "distill/runs/teacher/students/student/manifest.json" in names
    assert any("/student/_ray/" in n for n in names), "the student's checkpoints are not on S3"
    location = scorer_location("s3://distill/runs/teacher", "student", min_agreement=0.0)
    assert location == uri
    engine = Ensemble.from_registry(location, device="cpu")
    assert engine.registry.manifest["config"]["teacher_registry_id"] == reg.load_registry(
        "s3://distill/runs/teacher").registry_id
    assert np.isfinite(engine.score(load_annotated("sample").texts[:3]).probs).all()

    registry_id = reg.load_registry("s3://distill/runs/teacher").registry_id

    def cached_scores() -> dict:
        listed = pafs.FileSelector(f"distill/runs/teacher/{CACHE}/{registry_id}", recursive=True)
        return {i.path: i.mtime for i in s3.get_file_info(listed)
                if "/scores/" in i.path and i.path.endswith(".parquet")}

    scores = cached_scores()
    assert sorted({p.split("/")[5][:7] for p in scores}) == ["corpus-", "gold"]
    assert not list((tmp_path / "cache").rglob(CACHE)), "the probabilities were cached on this machine only"
    monkeypatch.setenv("VALUECSV_CACHE", str(tmp_path / "another-machine"))
    distill(load_distill_config(overrides={**settings, "registry": "s3://distill/runs/teacher",
                                           "name": "second", "max_epochs": 1}))
    assert cached_scores() == scores  # nothing scored again
    assert reg.load_registry("s3://distill/runs/teacher/students/second").manifest["registry_id"]
