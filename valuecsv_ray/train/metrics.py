"""Decision thresholds and test metrics for one binary evaluator.

    threshold = best_f1_threshold(y_val, p_val)
    metrics = binary_metrics(y_test, p_test, threshold)
    ece = expected_calibration_error(y_test, p_test)        # 15 bins
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score

METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def best_f1_threshold(y_true: np.ndarray, prob: np.ndarray) -> float:
    """The probability cut that maximises F1 on (validation) data; 0.5 without positives."""
    y_true = np.asarray(y_true)
    if y_true.sum() == 0 or y_true.sum() == len(y_true):
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y_true, prob)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def binary_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float | int | None]:
    """Accuracy, precision, recall, F1 (positive class) and ROC-AUC at a threshold."""
    y_true = np.asarray(y_true).astype(int)
    pred = (np.asarray(prob) >= threshold).astype(int)
    tp = int(((pred == 1) & (y_true == 1)).sum())
    fp = int(((pred == 1) & (y_true == 0)).sum())
    fn = int(((pred == 0) & (y_true == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both_classes = 0 < y_true.sum() < len(y_true)
    return {
        "accuracy": float((pred == y_true).mean()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": float(roc_auc_score(y_true, prob)) if both_classes else None,
        "n_test": int(len(y_true)),
        "n_test_positive": int(y_true.sum()),
    }


ECE_BINS = 15


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of P(positive): over `bins` equal-width probability bins, the share-weighted gap
    between each bin's mean probability and its observed positive rate."""
    y_true, prob = np.asarray(y_true, dtype=float), np.asarray(prob, dtype=float)
    if not len(prob):
        return float("nan")
    which = np.minimum((prob * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        members = which == b
        total += members.mean() * abs(prob[members].mean() - y_true[members].mean())
    return float(total)


TEMPERATURES = np.geomspace(0.05, 20.0, 241)


def fit_temperature(nll: Callable[[float], float], grid: np.ndarray = TEMPERATURES) -> float:
    """The temperature on `grid` with the lowest validation negative log-likelihood; a grid
    instead of gradient steps because the aggregation over windows (max) is not smooth."""
    losses = [nll(float(t)) for t in grid]
    return float(grid[int(np.argmin(losses))])


def log_loss(y_true: np.ndarray, prob: np.ndarray) -> float:
    p = np.clip(np.asarray(prob, dtype=float), 1e-7, 1 - 1e-7)
    y = np.asarray(y_true, dtype=float)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
