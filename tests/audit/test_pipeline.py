"""The Ray Data audit, for real on local Ray: every row accounted for, engine-equal scores,
resume after an interruption, wide input (quest100), statistics and report from the CLI, and a
registry of another taxonomy audited on its own values."""

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from valuecsv_ray.audit.paths import expand_inputs
from valuecsv_ray.audit.pipeline import AuditError, run_audit
from valuecsv_ray.audit.schema import QUARANTINE_SCHEMA, prob_columns, score_schema
from valuecsv_ray.audit.stats import compute_stats, load_stats
from valuecsv_ray.cli import main
from valuecsv_ray.config import load_audit_config
from valuecsv_ray.registry import load_registry
from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.synthetic import random_registry
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy

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
def audited(ray_local, tiny_registry, corpus, tmp_path_factory):
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
    assert json.loads((out / "summary.json").read_text())["rows_in"] == n_lines


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
