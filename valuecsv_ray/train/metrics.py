"""Decision thresholds and test metrics for one binary evaluator.

    threshold = best_f1_threshold(y_val, p_val)
    metrics = binary_metrics(y_test, p_test, threshold)
"""

from __future__ import annotations

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
