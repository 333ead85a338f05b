"""The scoring engine: same numbers as plain transformers, input order, windows, errors."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from valuecsv_ray.scoring.engine import Ensemble, EnsembleTokenizer
from valuecsv_ray.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
VALUE_IDS = TAXONOMY.ids

TEXTS = ["依法治国，公正司法。", "经济发展，国家富强，人民生活水平不断提高。" * 3, "邻里互助。", "诚信经营"]


@pytest.fixture(scope="module")
def engine(tiny_registry):
    torch.set_num_threads(1)
    return Ensemble.from_registry(tiny_registry)


def test_scores_equal_plain_transformers(engine, tiny_registry):
    scores = engine.score(TEXTS)
    assert scores.probs.shape == (len(TEXTS), 12) and scores.value_ids == VALUE_IDS
    for j, value_id in enumerate(VALUE_IDS[:4]):
        folder = tiny_registry / "evaluators" / value_id
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        with torch.no_grad():
            for i, text in enumerate(TEXTS):
                p = torch.softmax(model(**tokenizer([text], return_tensors="pt")).logits, -1)[0, 1]
                assert abs(float(p) - scores.probs[i, j]) < 1e-5


def test_output_order_is_input_order_after_length_sorting(engine):
    base = engine.score(TEXTS).probs
    order = [3, 1, 0, 2]
    permuted = engine.score([TEXTS[i] for i in order]).probs
    np.testing.assert_allclose(permuted, base[order], atol=1e-6)
    assert not np.allclose(base[0], base[1]), "different texts should score differently"


def test_token_budget_changes_batching_not_scores(tiny_registry, engine):
    small = Ensemble.from_registry(tiny_registry, token_budget=512)
    np.testing.assert_allclose(small.score(TEXTS).probs, engine.score(TEXTS).probs, atol=1e-5)


def test_labels_follow_registry_thresholds(engine, tiny_registry):
    scores = engine.score(TEXTS)
    np.testing.assert_array_equal(scores.labels, scores.probs >= engine.thresholds)
    assert engine.thresholds[1] == pytest.approx(0.33)


def test_long_text_is_scored_over_windows(engine):
    long_text = ("全面依法治国是国家治理的一场深刻革命。" * 600)[:10_000]
    scores = engine.score([long_text, "短文本"])
    body = engine.max_length - 2
    expected = len(range(0, 10_000 - body, engine.stride)) + 1
    assert scores.windows.tolist() == [expected, 1]
    assert np.isfinite(scores.probs).all() and (scores.probs[0] > 0).all()


def test_max_aggregation_is_max_over_windows(engine):
    text = "富强民主文明和谐" * 40 + "自由平等公正法治" * 40  # 640 characters, one token each
    body = engine.max_length - 2
    windows = [text[:body], text[len(text) - body :]]  # what the engine cuts: 2 windows
    whole = engine.score([text])
    assert whole.windows.tolist() == [2]
    np.testing.assert_allclose(whole.probs[0], engine.score(windows).probs.max(axis=0), atol=1e-5)


def test_group_means_follow_the_registry_taxonomy(engine):
    scores = engine.score(TEXTS)
    groups = scores.group_means()
    cols = [i for i, v in enumerate(VALUE_IDS) if TAXONOMY.get(v).group == "personal"]
    np.testing.assert_allclose(groups["personal"], scores.probs[:, cols].mean(axis=1))
    record = scores.to_records()[0]
    assert set(record["probs"]) == set(VALUE_IDS)
    assert list(record["groups"]) == list(TAXONOMY.groups)


def _with_rule(registry_dir, tmp_path, **entry):
    """A copy of a registry whose evaluators record another window rule / temperature."""
    import json
    import shutil

    copy = tmp_path / "rule"
    shutil.copytree(registry_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    for ev in manifest["evaluators"].values():
        ev.update(entry)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_engine_applies_the_recorded_temperature_and_aggregation(engine, tiny_registry, tmp_path):
    text = "富强民主文明和谐" * 40 + "自由平等公正法治" * 40  # two windows
    rule = {"window": {"max_length": 512, "stride": 255, "aggregate": "mean"}, "temperature": 2.0}
    recorded = Ensemble.from_registry(_with_rule(tiny_registry, tmp_path, **rule))
    body = engine.max_length - 2
    parts = engine.score([text[:body], text[len(text) - body :]]).probs.astype(np.float64)
    margins = np.log(parts / (1 - parts))  # back from probabilities to margins
    expected = (1 / (1 + np.exp(-margins / 2.0))).mean(axis=0)
    np.testing.assert_allclose(recorded.score([text]).probs[0], expected, atol=1e-5)
    override = Ensemble.from_registry(_with_rule(tiny_registry, tmp_path / "o", **rule), aggregate="max")
    assert override.aggregates == ["max"] * len(VALUE_IDS)


@pytest.mark.parametrize("bad", [[""], ["ok", "   "], ["ok", 3], [None]])
def test_empty_or_non_string_texts_are_refused(engine, bad):
    with pytest.raises(ValueError, match="text"):
        engine.score(bad)


def test_a_bare_string_is_refused(engine):
    with pytest.raises(TypeError, match="list"):
        engine.score("一段文本")


def test_cli_score_locally_prints_a_value_by_text_table(tiny_registry):
    from click.testing import CliRunner

    from valuecsv_ray.cli import main

    result = CliRunner().invoke(main, ["score", "--registry", str(tiny_registry), "依法治国", "诚信"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("value") and "[1] 诚信" in lines[0]
    assert sum(1 for line in lines if line.split()[-1].rstrip("*").replace(".", "").isdigit()) == 12


@pytest.mark.integration  # waits out the client's real retry backoff (~10 s)
def test_cli_score_without_a_server_says_how_to_start_one():
    from click.testing import CliRunner

    from valuecsv_ray.cli import main

    result = CliRunner().invoke(main, ["score", "--url", "http://127.0.0.1:9", "文本"])
    assert result.exit_code == 1 and "valuecsv-ray serve" in result.output


def test_tokenising_apart_then_scoring_gives_the_same_scores(engine, tiny_registry):
    tokenizer = EnsembleTokenizer.from_registry(tiny_registry)
    long_text = "国家富强，民族振兴。" * 120
    encoded = tokenizer.encode([*TEXTS, long_text])
    assert len(encoded) == 1 and len(encoded[0][-1]) > 1  # one shared tokenizer; windows
    apart = engine.score_encoded(encoded)
    together = engine.score([*TEXTS, long_text])
    np.testing.assert_array_equal(apart.probs, together.probs)
    np.testing.assert_array_equal(apart.windows, together.windows)
