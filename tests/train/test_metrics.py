"""Decision threshold and test metrics of one binary evaluator."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from valuecsv_ray.train.metrics import METRIC_KEYS, best_f1_threshold, binary_metrics

Y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.9, 0.2, 0.05])


def test_best_f1_threshold_by_hand():
    # cut 0.35 -> predicted 1: .35 .4 .7 .8 .9 -> tp 3, fp 2 -> F1 = 6/8 = 0.75
    # cut 0.7  -> predicted 1: .7 .8 .9       -> tp 2, fp 1 -> F1 = 4/6 = 0.667
    # cut 0.8  -> predicted 1: .8 .9          -> tp 2, fp 0 -> F1 = 4/5 = 0.8 (best)
    assert best_f1_threshold(Y, P) == pytest.approx(0.8)


def test_binary_metrics_by_hand():
    m = binary_metrics(Y, P, threshold=0.35)
    # predicted 1 at indices 1, 2, 3, 4, 5: tp 3 (2, 3, 5), fp 2 (1, 4), fn 0, tn 3
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(0.75)
    # positives .35 .8 .9 against negatives .1 .4 .7 .2 .05: 13 of 15 pairs ordered right
    assert m["roc_auc"] == pytest.approx(13 / 15)
    assert (m["n_test"], m["n_test_positive"]) == (8, 3)
    assert set(METRIC_KEYS) <= set(m)


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5, 0.75, 0.95])
def test_binary_metrics_agree_with_sklearn(threshold):
    rng = np.random.default_rng(int(threshold * 100))
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1)
    m = binary_metrics(y, p, threshold)
    assert m["f1"] == pytest.approx(f1_score(y, p >= threshold, zero_division=0))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))


def test_best_threshold_maximises_f1():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 120)
    p = np.clip(0.25 * y + 0.75 * rng.random(120), 0, 1)
    best = f1_score(y, p >= best_f1_threshold(y, p))
    assert all(f1_score(y, p >= t) <= best + 1e-12 for t in np.unique(p))


@pytest.mark.parametrize("y", [np.zeros(5, dtype=int), np.ones(5, dtype=int)])
def test_single_class(y):
    p = np.linspace(0.1, 0.9, 5)
    assert best_f1_threshold(y, p) == 0.5
    m = binary_metrics(y, p, 0.5)
    assert m["roc_auc"] is None
    assert m["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))


def test_no_predicted_positives_gives_zero_not_nan():
    m = binary_metrics(np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]), threshold=0.9)
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
