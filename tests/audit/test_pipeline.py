"""The Ray Data audit, for real on local Ray: every row accounted for, engine-equal scores,
resume after an interruption, progress in summary.json while it runs, an early failure where the
cluster cannot hold it, wide input (quest100), statistics and report from the CLI, and a
registry of another taxonomy audited on its own values."""

import json
import shutil
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from valuecsv_ray.audit import pipeline
from valuecsv_ray.audit.paths import expand_inputs
from valuecsv_ray.audit.pipeline import AuditError, run_audit, score_corpus
from valuecsv_ray.audit.schema import QUARANTINE_SCHEMA, prob_columns, score_schema
from valuecsv_ray.audit.stats import compute_stats, load_stats
from valuecsv_ray.cli import main
from valuecsv_ray.config import load_audit_config
from valuecsv_ray.registry.manifest import load_registry
from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy
from valuecsv_ray.testing.synthetic import random_registry

pytestmark = pytest.mark.ray
MODELS = ("glm", "qwen", "ernie")
TAX = load_taxonomy()  # the tiny registry's (tests/conftest.py)
PROB_COLUMNS = prob_columns(TAX)


def _corpus(folder: Path, n_good: int = 60) -> tuple[Path, list[str]]:
    """A jsonl corpus of good rows plus one row of every kind that cannot be scored."""
    rng = np.random.default_rng(0)
    phrases = ["坚持依法治国。", "人民生活富裕。", "邻里和睦相处。", "诚信经营，童叟无欺。", "爱岗敬业。"]
    lines, texts = [], []
    for i in range(n_good):
        text = "".join(rng.choice(phrases, size=int(rng.integers(1, 40))))
        texts.append(text)
        lines.append(json.dumps({"id": f"r{i}", "model": MODELS[i % 3], "prompt": f"q{i // 3}",
                                 "response": text}, ensure_ascii=False).encode())
    bad = [b'{"id": "b1", "model": "glm", "response": ""}',  # empty text
           b'{"id": "b2", "model": "glm", "response": "   "}',  # whitespace text
           b'{"id": "b3", "model": "glm", "response": null}',  # null text
           b'{"id": "b4", "model": "glm"}',  # missing text
           b'{"id": "b5", "model": "glm", "response": 42}',  # non-string text
           b'{"id": "b6", "model": "glm", "response": "\xb2\xbb\xba\xc3"}',  # GBK bytes, not UTF-8
           b'{"id": "b7", "model": "glm", "response": "cut off',  # malformed JSON
           b'["not", "an", "object"]',
           b'{"id": "r1", "model": "glm", "response": "repeated id"}']  # duplicate id
    for j, line in enumerate(bad):
        lines.insert(7 * j + 3, line)
    path = folder / "corpus.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, texts


def _config(inputs, registry, out, **kw):
    return load_audit_config(overrides={"inputs": [str(i) for i in inputs], "registry": str(registry),
                                        "out": str(out), "batch_size": 16, **kw})


def _scores(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "scores").to_pandas()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def small_blocks():
    """Blocks of ~4 KiB (~10 rows of the test corpus) instead of ~1 MiB: several blocks in flight,
    several score files."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "BLOCK_BYTES", 4096)
        yield


@pytest.fixture(scope="module")
def audited(ray_local, tiny_registry, corpus, tmp_path_factory, small_blocks):
    out = tmp_path_factory.mktemp("audit") / "run"
    result = run_audit(_config([corpus[0]], tiny_registry, out))
    assert result.out == out and result.taxonomy == load_registry(tiny_registry).taxonomy == TAX
    return result


def test_every_row_is_scored_or_quarantined_with_its_reason(audited, corpus):
    out, summary = Path(audited.out), audited.summary
    n_lines = len(corpus[0].read_bytes().splitlines())
    assert summary["rows_in"] == n_lines == len(corpus[1]) + 9
    assert summary["rows_scored"] == len(corpus[1]) and summary["rows_quarantined"] == 9
    assert summary["duplicates"] == 0
    assert summary["quarantine_reasons"] == {
        "empty text": 2, "missing text": 2, "non-string text (int)": 1, "unreadable encoding (not UTF-8)": 1,
        "malformed JSON": 2, "duplicate id": 1}
    quarantine = pq.read_table(out / "quarantine")
    assert quarantine.schema.equals(QUARANTINE_SCHEMA, check_metadata=False)
    reasons = dict(zip(quarantine["row_id"].to_pylist(), quarantine["reason"].to_pylist(), strict=True))
    at = f"{corpus[0]}:"  # rows whose id could not be read are named by file and line
    assert reasons["b1"] == reasons["b2"] == "empty text"
    assert reasons["b3"] == reasons["b4"] == "missing text"
    assert reasons["b5"].startswith("non-string text")
    assert reasons[at + "38"].startswith("unreadable encoding")
    assert reasons[at + "45"].startswith("malformed JSON") and reasons[at + "52"].startswith("malformed JSON")
    assert reasons[at + "59"] == "duplicate id: r1"
    assert set(quarantine["position"].to_pylist()) == {7 * j + 3 for j in range(9)}
    written = json.loads((out / "summary.json").read_text())
    assert written["rows_in"] == n_lines and written["status"] == "done"
    progress = written["progress"]
    assert (progress["phase"], progress["rows_in"], progress["rows_checked"]) == ("score", n_lines, n_lines)
    assert progress["rows_scored"] == len(corpus[1]) and progress["rows_done_before"] == 0
    assert progress["rows_per_s"] > 0 and progress["elapsed_s"] >= progress["scoring_s"] > 0
    assert len(list((out / "scores").glob("*.parquet"))) >= 2  # one file per scored block


def test_per_row_scores_equal_the_engine(audited, corpus, tiny_registry):
    out = Path(audited.out)
    scores = _scores(out).set_index("row_id").loc[[f"r{i}" for i in range(len(corpus[1]))]]
    direct = Ensemble.from_registry(tiny_registry, device="cpu").score(corpus[1])
    np.testing.assert_allclose(scores[list(PROB_COLUMNS)].to_numpy(), direct.probs, atol=1e-6)
    assert (scores["windows"].to_numpy() == direct.windows).all()
    assert list(scores["model"][:3]) == list(MODELS)
    assert (scores["text_chars"].to_numpy() == [len(t) for t in corpus[1]]).all()


def test_outputs_load_in_duckdb_with_the_documented_schema(audited):
    out = Path(audited.out)
    assert pq.read_table(out / "scores").schema.equals(score_schema(TAX), check_metadata=False)
    got = duckdb.sql(f"select model, count(*) n, avg(p_freedom) from '{out}/scores/*.parquet' "
                     "group by model order by model").fetchall()
    assert [(m, n) for m, n, _ in got] == [(m, 20) for m in sorted(MODELS)]


def test_the_audit_writes_the_statistics_of_its_scores(audited):
    out = Path(audited.out)
    scores = _scores(out)
    expected, coverage = compute_stats(scores, TAX)  # every prompt was answered by every model
    pd.testing.assert_frame_equal(audited.stats, expected)
    assert audited.coverage == coverage and coverage["restricted"] is True
    stats, written_coverage, taxonomy = load_stats(audited.stats_dir)
    pd.testing.assert_frame_equal(stats, expected)
    assert written_coverage == coverage and taxonomy == TAX
    assert json.loads((out / "audit.json").read_text())["config"]["all_prompts"] is False


def test_resume_after_an_interruption_gives_one_row_per_input_row(audited, tiny_registry, corpus, tmp_path):
    done = Path(audited.out)
    out = tmp_path / "run"
    shutil.copytree(done, out)
    files = sorted((out / "scores").glob("*.parquet"))
    assert len(files) >= 2, "need several score files to simulate an interruption"
    files[0].unlink()  # never written
    files[1].write_bytes(files[1].read_bytes()[:200])  # cut off mid-write
    (out / "quarantine").joinpath(next((out / "quarantine").glob("*.parquet")).name).unlink()
    summary = run_audit(_config([corpus[0]], tiny_registry, out)).summary
    assert summary["rows_scored"] == len(corpus[1]) and summary["rows_quarantined"] == 9
    again = _scores(out).sort_values("row_id").reset_index(drop=True)
    first = _scores(done).sort_values("row_id").reset_index(drop=True)
    assert again["row_id"].is_unique and len(again) == len(first)
    pd.testing.assert_frame_equal(again, first)


def test_s3_inputs_are_audited_like_local_files(audited, corpus, tiny_registry, s3, tmp_path):
    s3.create_dir("audit-in")
    with s3.open_output_stream("audit-in/llm/corpus.jsonl") as f:
        f.write(corpus[0].read_bytes())
    uri = "s3://audit-in/llm/corpus.jsonl"
    assert expand_inputs(["s3://audit-in/"]) == expand_inputs(["s3://audit-in/**/*.jsonl"]) == [uri]
    out = tmp_path / "run"
    summary = run_audit(_config(["s3://audit-in/"], tiny_registry, out)).summary
    local_out, local = Path(audited.out), audited.summary
    assert (summary["rows_in"], summary["rows_scored"]) == (local["rows_in"], local["rows_scored"])
    assert summary["quarantine_reasons"] == local["quarantine_reasons"]
    got = _scores(out).sort_values("row_id").reset_index(drop=True)
    want = _scores(local_out).sort_values("row_id").reset_index(drop=True)
    assert (got["source"] == uri).all()
    pd.testing.assert_frame_equal(got.drop(columns="source"), want.drop(columns="source"))
    quarantined = pq.read_table(out / "quarantine").to_pandas()
    assert f"{uri}:45" in set(quarantined["row_id"])  # ids from position name the URI


def test_an_id_in_two_files_stops_the_audit_before_scoring(tiny_registry, ray_local, tmp_path):
    for name, ids in (("a.jsonl", ["x1", "x2", "x3"]), ("b.jsonl", ["y1", "x2"])):
        rows = [json.dumps({"id": i, "response": f"text {i}"}) for i in ids]
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    with pytest.raises(AuditError, match="1 row id.s. appear in more than one input file") as e:
        run_audit(_config([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tiny_registry, out))
    assert f"'x2' ({tmp_path / 'a.jsonl'} row 1)" in str(e.value)
    assert f"'x2' ({tmp_path / 'b.jsonl'} row 1)" in str(e.value)
    assert not (out / "scores").exists()


def test_resume_with_other_settings_is_refused(audited, tiny_registry, corpus):
    out = Path(audited.out)
    with pytest.raises(AuditError, match="text_column"):
        run_audit(_config([corpus[0]], tiny_registry, out, text_column="text"))


def _snapshots(summary: Path, stop: threading.Event, seen: list[dict]) -> None:
    """Keep every distinct summary.json seen until `stop` (an onlooker, as `cat summary.json`)."""
    while not stop.wait(0.02):
        try:
            report = json.loads(summary.read_text())
        except (OSError, ValueError):  # not written yet
            continue
        if not seen or report != seen[-1]:
            seen.append(report)


def test_the_summary_tells_the_progress_while_the_audit_runs(ray_local, tiny_registry, small_blocks,
                                                             tmp_path):
    path, texts = _corpus(tmp_path, n_good=400)
    out, stop, seen = tmp_path / "run", threading.Event(), []
    onlooker = threading.Thread(target=_snapshots, args=(out / "summary.json", stop, seen))
    onlooker.start()
    try:
        summary = score_corpus(_config([path], tiny_registry, out), load_registry(tiny_registry),
                               progress_every_s=0)
    finally:
        stop.set()
        onlooker.join()
    midway = [s for s in seen if s["status"] == "running" and 0 < s["progress"]["rows_scored"] < len(texts)]
    assert midway, [s["progress"] for s in seen]
    progress = midway[0]["progress"]
    assert midway[0]["registry_id"] == summary["registry_id"] and progress["phase"] == "score"
    assert progress["rows_in"] == progress["rows_checked"] == len(texts) + 9
    assert progress["rows_per_s"] > 0 and progress["elapsed_s"] > 0 and progress["first_scores_s"] > 0
    counts = [s["progress"]["rows_scored"] for s in midway]
    assert counts == sorted(counts)
    assert summary["status"] == "done" and summary["progress"]["rows_scored"] == len(texts)


def test_a_failed_audit_says_so_in_its_summary(ray_local, tiny_registry, corpus, tmp_path):
    def broken(registry, **kwargs):
        raise RuntimeError("no engine here")

    out = tmp_path / "run"
    with pytest.raises(Exception, match="no engine here"):
        score_corpus(_config([corpus[0]], tiny_registry, out), load_registry(tiny_registry), engine=broken)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "no engine here" in summary["error"]
    assert summary["progress"]["phase"] == "score" and summary["progress"]["rows_scored"] == 0
    assert summary["progress"]["rows_checked"] == len(corpus[1]) + 9


@pytest.mark.parametrize(("settings", "named"), [
    ({"actors": 2}, ["2 scoring actor(s) need 2 CPUs", "3 CPUs, 0 GPUs in all", "has 2 CPUs, 0 GPUs",
                     "actors (--actors)", "cpus_per_actor (--cpus-per-actor)"]),
    ({"gpus_per_actor": 1}, ["2 CPUs, 1 GPUs in all", "has 2 CPUs, 0 GPUs",
                             "gpus_per_actor (--gpus-per-actor)"]),
])
def test_an_audit_the_cluster_cannot_hold_fails_at_once(ray_local, tiny_registry, corpus, tmp_path, settings,
                                                        named):
    out = tmp_path / "run"
    with pytest.raises(AuditError, match="the audit does not fit the Ray cluster") as e:
        run_audit(_config([corpus[0]], tiny_registry, out, **settings))
    for words in named:
        assert words in str(e.value)
    assert not out.exists()  # nothing started


def test_cpus_held_by_other_work_fail_the_audit_after_a_wait(ray_local, tiny_registry, corpus, tmp_path):
    from valuecsv_ray.audit.capacity import check_capacity

    @ray_local.remote(num_cpus=1)
    class Replica:  # like a Serve replica beside the audit, on the 2 CPUs of the test's Ray
        def ready(self):
            return True

    replica = Replica.remote()
    ray_local.get(replica.ready.remote())
    try:
        with pytest.raises(AuditError, match="only 1 CPUs, 0 GPUs free") as e:
            check_capacity(_config([corpus[0]], tiny_registry, tmp_path / "run"), wait_s=1)
        assert "2 CPUs, 0 GPUs in all" in str(e.value) and "held by other work" in str(e.value)
    finally:
        ray_local.kill(replica)


def test_the_benchmarks_null_engine_scores_every_good_row_at_half(ray_local, tiny_registry, corpus, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import audit_bench

    out = tmp_path / "run"
    summary = score_corpus(_config([corpus[0]], tiny_registry, out), load_registry(tiny_registry),
                           engine=audit_bench.null_engine())
    assert summary["rows_scored"] == len(corpus[1]) and summary["rows_quarantined"] == 9
    scores = _scores(out)
    assert (scores[list(PROB_COLUMNS)] == 0.5).all().all()
    assert set(scores["row_id"]) == {f"r{i}" for i in range(len(corpus[1]))}
    assert (scores["windows"] == 1).all()


def test_quest100_wide_audit_cli_and_report(ray_local, tiny_registry, shared_data, tmp_path):
    out = tmp_path / "quest100"
    result = CliRunner().invoke(main, ["audit", str(shared_data / "quest100.xlsx"), "--wide",
                                       "--registry", str(tiny_registry), "--out", str(out),
                                       "--batch-size", "64"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_in"] == summary["rows_scored"] + summary["rows_quarantined"]
    assert summary["rows_quarantined"] > 0  # blank answers and stray rows
    assert len(summary["rows_per_model"]) == 6
    stats = pd.read_parquet(out / "stats" / "stats.parquet")
    table = stats[stats["scope"] == "value"].pivot(index="model", columns="key", values="mean")
    assert table.shape == (6, len(TAX.ids)) and set(table.columns) == set(TAX.ids)
    scores = _scores(out)  # the statistics are those of the written rows, on the 89 common questions
    common = scores.groupby("prompt")["model"].nunique().loc[lambda n: n == 6].index
    assert len(common) == 89
    expected = scores[scores["prompt"].isin(common)].groupby("model")[list(PROB_COLUMNS)].mean()
    expected.columns = [c.removeprefix("p_") for c in expected.columns]
    np.testing.assert_allclose(table.loc[expected.index, expected.columns].to_numpy(), expected.to_numpy(),
                               rtol=1e-6)
    result = CliRunner().invoke(main, ["report", str(out / "stats")])
    assert result.exit_code == 0, result.output
    pngs = sorted((out / "stats").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_a_registry_of_another_taxonomy_is_audited_on_its_own_values(ray_local, corpus, tmp_path):
    toy = Taxonomy.from_dict({"name": "toy", "title": "Toy", "group_kind": "pillar", "groups": ["a", "b"],
                              "labels": [{"id": "courage", "group": "a", "column": "c"},
                                         {"id": "patience", "group": "a", "column": "p"},
                                         {"id": "kindness", "group": "b", "column": "k"}]})
    registry = random_registry(tmp_path / "toy-registry", seed=3, taxonomy=toy)
    out = tmp_path / "run"
    result = run_audit(_config([corpus[0]], registry, out, all_prompts=True))
    assert result.taxonomy == toy
    assert pq.read_table(out / "scores").schema.equals(score_schema(toy), check_metadata=False)
    scores = _scores(out).set_index("row_id").loc[[f"r{i}" for i in range(len(corpus[1]))]]
    direct = Ensemble.from_registry(registry, device="cpu").score(corpus[1])
    np.testing.assert_allclose(scores[["p_courage", "p_patience", "p_kindness"]].to_numpy(), direct.probs,
                               atol=1e-6)
    glm = result.stats[result.stats["model"] == "glm"]
    assert list(zip(glm["scope"], glm["key"], strict=True)) == [
        ("value", "courage"), ("value", "patience"), ("value", "kindness"), ("group", "a"), ("group", "b"),
        ("overall", "all")]
    assert result.coverage["restricted"] is False and "common_prompts=False" in result.coverage["reason"]
    assert load_stats(out / "stats")[2] == toy
    assert json.loads((out / "audit.json").read_text())["config"]["all_prompts"] is True
    again = run_audit(_config([corpus[0]], registry, out))  # statistics only: a resume may change it
    assert again.summary["rows_scored"] == result.summary["rows_scored"] and again.coverage["restricted"]
