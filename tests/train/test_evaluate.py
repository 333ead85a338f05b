"""Evaluating a trained model through the engine's scoring path: temperature, threshold,
calibration (ECE) and the long-text figures; join_texts; ECE and temperature fitting."""

import re

import numpy as np
import pytest
import torch

from valuecsv_ray.backbone import load_backbone
from valuecsv_ray.config import AGGREGATIONS
from valuecsv_ray.scoring.core import owners_of, split_windows
from valuecsv_ray.train.evaluate import WindowRule, evaluate_model, join_texts, score_margins
from valuecsv_ray.train.loop import encode, make_loss, train_epoch
from valuecsv_ray.train.metrics import (
    ECE_BINS,
    TEMPERATURES,
    binary_metrics,
    expected_calibration_error,
    fit_temperature,
    log_loss,
)

CPU = torch.device("cpu")
RULE = WindowRule.of(16, None, "max")  # 14 tokens a window, 7 apart: joined texts need several
SUBJECTS = ["商家", "老师", "邻居", "朋友", "工人", "学生"]
POSITIVE = ["讲诚信。", "诚实守信。", "守信用。"]  # integrity
NEGATIVE = ["去散步。", "爱读书。", "在做饭。", "看风景。"]


def _texts(offset: int, n: int) -> tuple[list[str], np.ndarray]:
    """n short sentences; about a third speak of integrity (诚信), labelled in column 0 with
    every seventh label flipped (annotators disagree, so no model is certain); column 1 marks
    sentences about teachers."""
    texts, labels = [], []
    for i in range(offset, offset + n):
        subject, positive = SUBJECTS[i % len(SUBJECTS)], i % 3 == 0
        ending = POSITIVE[i % len(POSITIVE)] if positive else NEGATIVE[i % len(NEGATIVE)]
        texts.append(f"{subject}{ending}")
        labels.append([int(positive != (i % 7 == 3)), int(subject == "老师")])
    return texts, np.array(labels)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """A tiny model runs fastest on one thread; more only contend with other work for the CPUs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _logits(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """Plain transformers logits (eval mode) of short texts, for comparison."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    model.train(was_training)
    return logits


@pytest.fixture(scope="module")
def tiny():
    """The tiny backbone with a binary head, trained a few epochs on sentences about integrity."""
    tokenizer, model = load_backbone("tiny", 2, False)
    texts, labels = _texts(100, 48)
    ids, targets = encode(tokenizer, texts, RULE.max_length), labels[:, 0]
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss_fn, rng = make_loss(targets, multi_label=False, weighting="balanced"), np.random.default_rng(0)
    for _ in range(6):
        train_epoch(model, ids, targets, rng.permutation(len(ids)), 8, optimizer, scheduler, loss_fn, CPU,
                    tokenizer.pad_token_id)
    return tokenizer, model


@pytest.fixture(scope="module")
def evaluation(tiny):
    tokenizer, model = tiny
    (val, y_val), (test, y_test) = _texts(0, 30), _texts(30, 30)
    texts, targets = {"validation": val, "test": test}, {"validation": y_val[:, 0], "test": y_test[:, 0]}
    assert model.training
    result = evaluate_model(model, tokenizer, ["integrity"], False, texts, targets, RULE, CPU, seed=3)
    assert model.training  # evaluation leaves the model in the mode it found it in
    return result, texts, targets


# ---------------------------------------------------------------- evaluate_model


def test_evaluate_model_gives_a_threshold_temperature_and_calibration(evaluation):
    result, texts, targets = evaluation
    assert result["window"] == {"max_length": 16, "stride": 7, "aggregate": "max"}
    assert list(result["evaluators"]) == ["integrity"]
    ev = result["evaluators"]["integrity"]
    assert 0.0 <= ev["threshold"] <= 1.0
    assert np.isclose(TEMPERATURES, ev["temperature"]).any()  # a temperature on the grid,
    assert TEMPERATURES[0] < ev["temperature"] < TEMPERATURES[-1]  # inside it: noisy labels
    assert ev["calibration"]["bins"] == ECE_BINS
    for key in ("ece_before", "ece_after"):
        assert 0.0 <= ev["calibration"][key] <= 1.0, key
    m = ev["metrics"]
    assert (m["n_test"], m["n_test_positive"]) == (30, int(targets["test"].sum()))
    assert all(0.0 <= m[k] <= 1.0 for k in ("accuracy", "precision", "recall", "f1", "roc_auc"))
    # the trained model, at the tuned threshold, beats always answering the majority class (0.57)
    assert m["accuracy"] >= 0.75 and m["roc_auc"] >= 0.75


def test_figures_are_those_of_the_engines_probabilities(tiny, evaluation):
    """Metrics and ECE are computed on sigmoid(margin / T) of the engine's windows, so the
    threshold describes the scores users get."""
    tokenizer, model = tiny
    result, texts, targets = evaluation
    ev = result["evaluators"]["integrity"]
    test = score_margins(model, tokenizer, 1, False, texts["test"], RULE, 16384, CPU)
    logits = _logits(model, tokenizer, texts["test"])  # one window per short text: logit[1] - logit[0]
    np.testing.assert_allclose(test.margins[:, 0], (logits[:, 1] - logits[:, 0]).numpy(), atol=1e-5)
    p_test = test.probs(0, ev["temperature"], "max")
    np.testing.assert_allclose(p_test, 1 / (1 + np.exp(-test.margins[:, 0] / ev["temperature"])), rtol=1e-5)
    assert ev["metrics"] == pytest.approx(binary_metrics(targets["test"], p_test, ev["threshold"]))
    ece = ev["calibration"]
    assert ece["ece_after"] == pytest.approx(expected_calibration_error(targets["test"], p_test))
    p_raw = test.probs(0, 1.0, "max")
    assert ece["ece_before"] == pytest.approx(expected_calibration_error(targets["test"], p_raw))


def test_long_text_figures_for_max_and_mean(tiny, evaluation):
    tokenizer, _ = tiny
    result, texts, targets = evaluation
    long = result["evaluators"]["integrity"]["long_texts"]
    joined, y_joined = join_texts(texts["test"], targets["test"], seed=3)
    assert long["n_texts"] == len(joined)
    assert long["true_positive_rate"] == pytest.approx(y_joined.mean())
    windows = np.bincount(owners_of(split_windows(tokenizer, joined, RULE.max_length, RULE.stride)))
    assert long["mean_windows"] == pytest.approx(windows.mean()) and long["mean_windows"] > 1
    assert 0.0 < long["multi_window_share"] <= 1.0
    assert long["single"]["f1"] == result["evaluators"]["integrity"]["metrics"]["f1"]
    for how in AGGREGATIONS:
        figures = long[how]
        assert set(figures) == {"f1", "positive_rate", "own_threshold", "f1_own_threshold"}
        assert all(0.0 <= figures[k] <= 1.0 for k in figures), how


def test_multilabel_model_gets_an_evaluator_per_value(tiny):
    tokenizer, _ = tiny
    _, model = load_backbone("tiny", 2, True)
    (val, y_val), (test, y_test) = _texts(0, 24), _texts(24, 24)
    rule = WindowRule.of(16, 5, "mean")
    texts, targets = {"validation": val, "test": test}, {"validation": y_val, "test": y_test}
    result = evaluate_model(model, tokenizer, ["integrity", "teacher"], True, texts, targets, rule, CPU,
                            token_budget=256)
    assert result["window"] == {"max_length": 16, "stride": 5, "aggregate": "mean"}
    assert list(result["evaluators"]) == ["integrity", "teacher"]
    for j, ev in enumerate(result["evaluators"].values()):
        assert ev["metrics"]["n_test_positive"] == int(y_test[:, j].sum())
        assert 0.0 <= ev["threshold"] <= 1.0 and np.isclose(TEMPERATURES, ev["temperature"]).any()
    scored = score_margins(model, tokenizer, 2, True, test, rule, 256, CPU)
    logits = _logits(model, tokenizer, test).numpy()
    np.testing.assert_allclose(scored.margins, logits, atol=1e-5)  # a multi-label margin is the logit


# ---------------------------------------------------------------- join_texts


def _parts(joined: str) -> list[int]:
    return [int(i) for i in re.findall(r"第(\d+)句。", joined)]


@pytest.mark.parametrize(("n", "seed"), [(30, 0), (31, 1), (7, 2), (2, 3)])
def test_joined_texts_have_2_or_3_parts_and_the_or_of_their_labels(n, seed):
    texts = [f"第{i}句。" for i in range(n)]
    targets = np.random.default_rng(seed).integers(0, 2, size=(n, 3))
    joined, labels = join_texts(texts, targets, seed)
    assert labels.shape == (len(joined), 3)
    used = []
    for text, label in zip(joined, labels, strict=True):
        parts = _parts(text)
        assert 2 <= len(parts) <= 3, text
        assert text == "".join(texts[i] for i in parts)
        np.testing.assert_array_equal(label, targets[parts].max(axis=0))
        used += parts
    assert len(used) == len(set(used))  # no text used twice
    assert n - len(used) <= 1  # at most one left over
    again, again_labels = join_texts(texts, targets, seed)
    assert again == joined and (again_labels == labels).all()


def test_join_texts_is_seeded_and_takes_a_single_column():
    texts = [f"第{i}句。" for i in range(20)]
    targets = np.arange(20) % 2
    a, labels = join_texts(texts, targets, seed=0)
    b, _ = join_texts(texts, targets, seed=1)
    assert a != b
    assert labels.shape == (len(a), 1)
    np.testing.assert_array_equal(labels[:, 0], [max(targets[i] for i in _parts(t)) for t in a])
    assert join_texts(["只有一句。"], np.array([1]), seed=0)[0] == []


# ---------------------------------------------------------------- calibration


def test_ece_of_a_perfectly_calibrated_case_is_zero():
    prob, y = [], []
    for p, n in ((0.1, 10), (0.3, 10), (0.5, 4), (0.8, 5), (1.0, 3)):  # each bin's positive rate is p
        prob += [p] * n
        y += [1] * round(p * n) + [0] * (n - round(p * n))
    assert expected_calibration_error(np.array(y), np.array(prob)) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    p = rng.uniform(size=50_000)
    assert expected_calibration_error(rng.uniform(size=p.size) < p, p) < 0.02


def test_ece_of_badly_calibrated_cases_is_large():
    y = np.array([1] * 10 + [0] * 90)
    assert expected_calibration_error(y, np.full(100, 0.9)) == pytest.approx(0.8)
    rng = np.random.default_rng(1)
    p = rng.uniform(size=50_000)
    overconfident = np.where(p > 0.5, 0.99, 0.01)
    assert expected_calibration_error(rng.uniform(size=p.size) < p, overconfident) > 0.2


def test_ece_weights_each_bin_by_its_share():
    y = np.array([1, 0, 0, 0])
    prob = np.array([0.95, 0.95, 0.05, 0.05])  # bin of 0.95: rate 0.5; bin of 0.05: rate 0
    assert expected_calibration_error(y, prob) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    assert expected_calibration_error(y, prob, bins=1) == pytest.approx(abs(0.5 - 0.25))
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


@pytest.mark.parametrize("true_t", [0.4, 2.5, 6.0])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    rng = np.random.default_rng(int(true_t * 10))
    margins = rng.normal(scale=4.0, size=20_000)
    y = rng.uniform(size=margins.size) < 1 / (1 + np.exp(-margins / true_t))
    fitted = fit_temperature(lambda t: log_loss(y, 1 / (1 + np.exp(-margins / t))))
    assert fitted in TEMPERATURES
    assert fitted == pytest.approx(true_t, rel=0.1)


def test_fit_temperature_picks_the_grid_point_of_least_loss():
    grid = np.array([0.5, 1.0, 2.0, 4.0])
    assert fit_temperature(lambda t: (t - 1.9) ** 2, grid) == 2.0
    assert log_loss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))
    assert np.isfinite(log_loss(np.array([1, 0]), np.array([0.0, 1.0])))  # clipped, not infinite
