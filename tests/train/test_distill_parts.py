"""How a student's texts are assembled (no Ray): window pieces, corpus parts by row id, and the
parts with and without a corpus."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from valuecsv_ray.audit.schema import prob_columns
from valuecsv_ray.backbone import tiny_tokenizer
from valuecsv_ray.config import load_distill_config
from valuecsv_ray.scoring.core import split_windows
from valuecsv_ray.taxonomy import load_taxonomy
from valuecsv_ray.train.distill import corpus_parts, student_spec, window_pieces

TAXONOMY = load_taxonomy()
TEACHER = SimpleNamespace(taxonomy=TAXONOMY,
                          manifest={"evaluators": {v: {"threshold": 0.4} for v in TAXONOMY.ids}})


def test_each_window_piece_is_one_window_of_the_engine():
    text = "坚持依法治国，建设法治社会。" * 9 + "AI 2024 法治"
    pieces = window_pieces(text, 30)
    assert pieces[0] == text[:30] and pieces[-1] == text[-30:] and all(len(p) == 30 for p in pieces)
    assert "".join(p[:15] for p in pieces[:-1]) in text  # half a piece apart, nothing skipped
    windows = split_windows(tiny_tokenizer(), pieces, max_length=32, stride=15)
    assert all(len(w) == 1 for w in windows)
    assert window_pieces("短文本", 30) == []


def test_corpus_parts_follow_the_row_id_not_the_order():
    ids = pd.Series([f"row-{i}" for i in range(2000)])
    parts = corpus_parts(ids, 0.1)
    share = {p: float((parts == p).mean()) for p in ("train", "validation", "test")}
    assert share["test"] == pytest.approx(0.1, abs=0.03)
    assert share["validation"] == pytest.approx(0.1, abs=0.03)
    assert list(corpus_parts(ids[::-1], 0.1)) == list(parts[::-1])


def _frame(prefix: str, n: int, parts: list[str] | None = None, gold: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    frame = pd.DataFrame({"row_id": [f"{prefix}-{i}" for i in range(n)],
                          "text": [f"{prefix}文本{i}" for i in range(n)],
                          **{c: rng.random(n) for c in prob_columns(TAXONOMY)}})
    if parts is not None:
        frame["part"] = parts
    if gold:
        for j in range(len(TAXONOMY.ids)):
            frame[f"gold_{j}"] = rng.integers(0, 2, n).astype(float)
    return frame


@pytest.mark.parametrize("with_corpus", [False, True])
def test_student_parts_with_and_without_a_corpus(with_corpus):
    cfg = load_distill_config(overrides={"registry": "r"})
    frames = {"gold": _frame("gold", 10, ["train"] * 6 + ["validation"] * 2 + ["test"] * 2, gold=True)}
    if with_corpus:
        frames["corpus"] = _frame("c", 200)
        frames["corpus"].loc[[5, 50, 150], "text"] = ["gold文本1", "gold文本8", "gold文本9"]  # annotated
        frames["pieces"] = _frame("piece", 30)
    spec, counts, left_out = student_spec(cfg, TEACHER, frames)
    n = {p: len(spec.texts[p]) for p in spec.texts}
    assert n == {p: sum(counts[p].values()) for p in counts}
    assert counts["train"]["annotated"] == 6 and counts["test"]["annotated"] == 2
    assert left_out == {"corpus_equal_to_annotated": 3 if with_corpus else 0}
    if with_corpus:
        assert sum(counts[p]["corpus"] for p in counts) == 197
        assert not {"gold文本1", "gold文本8", "gold文本9"} & set(spec.texts["train"][6:])
        assert counts["train"]["pieces"] == 30 and counts["test"]["corpus"] > 0
        assert np.isnan(np.asarray(spec.gold["train"])[6:]).all()  # corpus and pieces: no gold label
    assert not np.isnan(np.asarray(spec.gold["train"])[:6]).any()
    assert np.asarray(spec.teacher["train"]).shape == (n["train"], 12)
    assert spec.teacher_thresholds == [0.4] * 12


def test_raw_targets_undo_the_ensembles_temperature_and_keep_its_order():
    teacher = SimpleNamespace(taxonomy=TAXONOMY, manifest={"evaluators": {
        v: {"threshold": 0.5, "temperature": 20.0} for v in TAXONOMY.ids}})
    frames = {"gold": _frame("gold", 10, ["train"] * 6 + ["validation"] * 2 + ["test"] * 2, gold=True)}
    squashed = np.tile(0.49 + 0.002 * np.arange(10)[:, None], (1, 12))  # calibrated with T = 20
    frames["gold"][list(prob_columns(TAXONOMY))] = squashed
    raw = load_distill_config(overrides={"registry": "r", "raw_targets": True})
    spec, *_ = student_spec(raw, teacher, frames)
    part = spec.part("train")
    targets = spec.targets(part)[:, :12]
    assert np.all(np.diff(targets[:, 0]) > 0)  # same order as the calibrated probabilities
    spread = part.teacher[:, 0].max() - part.teacher[:, 0].min()
    assert targets[:, 0].max() - targets[:, 0].min() > 10 * spread
    np.testing.assert_allclose(spec.part("test").teacher, frames["gold"][list(prob_columns(TAXONOMY))][8:])
    plain, *_ = student_spec(load_distill_config(overrides={"registry": "r"}), teacher, frames)
    np.testing.assert_allclose(plain.targets(plain.part("train"))[:, :12], part.teacher)
