"""A student's loss, calibration, thresholds and agreement with its teacher ensemble.

    loss_fn = SoftTargetLoss(n_values=12, gold_weight=0.3)       # targets: [teacher p | gold or NaN]
    result = evaluate_student(model, tokenizer, parts, teacher_thresholds, rule, device)
    result["evaluators"]["freedom"]["agreement"]["decision"]     # on held-out text

A student imitates the ensemble, so it is fitted to the ensemble, not to the gold labels alone:
its temperature per value is the one whose calibrated probabilities have the lowest log-loss
against the ensemble's probabilities on validation text, and its threshold the one whose decisions
agree most often with the ensemble's there. On held-out text (the teacher's test part and the
corpus rows held out from training) it records per value the decision agreement and the mean
|p_student - p_ensemble|; on the gold test texts its F1/AUC beside the ensemble's on the same texts.
Scores go through the engine's scoring path (`train.evaluate.score_margins`: windows, batches,
aggregation), so the figures describe the scorer users call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from valuecsv_ray.config import DEFAULT_TOKEN_BUDGET
from valuecsv_ray.train.evaluate import WindowRule, score_margins
from valuecsv_ray.train.metrics import (
    ECE_BINS,
    binary_metrics,
    expected_calibration_error,
    fit_temperature,
)


class SoftTargetLoss:
    """BCE of a multi-label head against the ensemble's probabilities, mixed with BCE against the
    gold labels where a row has them: per value, (1 - gold_weight) x teacher term + gold_weight x
    gold term on gold rows, the teacher term alone elsewhere. Targets are (rows, 2 x values):
    teacher probabilities, then gold labels with NaN where there is none. `sums` gives the loss
    total and its normaliser, so validation shards on several workers add up exactly."""

    multi_label = True

    def __init__(self, n_values: int, gold_weight: float):
        self.n_values, self.gold_weight = n_values, gold_weight

    def to(self, device: torch.device) -> SoftTargetLoss:
        return self

    def sums(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = targets.to(logits.device).float()
        teacher, gold = targets[:, : self.n_values], targets[:, self.n_values :]
        has_gold = ~torch.isnan(gold)
        bce = nn.functional.binary_cross_entropy_with_logits
        teacher_term = bce(logits, teacher, reduction="none")
        gold_term = bce(logits, torch.nan_to_num(gold), reduction="none")
        w_gold = has_gold.float() * self.gold_weight
        total = ((1 - w_gold) * teacher_term + w_gold * gold_term).sum()
        return total, torch.full((), float(teacher.numel()), device=logits.device)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total, norm = self.sums(logits, targets)
        return total / norm


@dataclass(frozen=True)
class Part:
    """Texts of one part with the ensemble's probabilities and decisions and the gold labels
    (NaN where a text has none), each (n, values)."""

    texts: list[str]
    teacher: np.ndarray
    teacher_labels: np.ndarray
    gold: np.ndarray


def soft_log_loss(target: np.ndarray, prob: np.ndarray) -> float:
    """Cross-entropy of `prob` against soft targets (the ensemble's probabilities)."""
    p = np.clip(np.asarray(prob, dtype=float), 1e-7, 1 - 1e-7)
    t = np.asarray(target, dtype=float)
    return float(-(t * np.log(p) + (1 - t) * np.log(1 - p)).mean())


def best_agreement_threshold(reference: np.ndarray, prob: np.ndarray) -> float:
    """The cut whose decisions (prob >= cut) agree with `reference` (bool) on most texts; between
    equally good cuts, the lowest. With no texts, 0.5."""
    reference, prob = np.asarray(reference, dtype=bool), np.asarray(prob, dtype=float)
    if not len(prob):
        return 0.5
    order = np.argsort(-prob, kind="stable")
    sorted_p, sorted_ref = prob[order], reference[order]
    # cut at sorted_p[i]: texts 0..i (and ties) positive; agreement = positives right + negatives right
    true_pos = np.cumsum(sorted_ref)
    false_pos = np.cumsum(~sorted_ref)
    negatives_right = (~reference).sum() - false_pos
    agree = true_pos + negatives_right
    last_of_tie = np.r_[sorted_p[1:] != sorted_p[:-1], True]
    candidates = np.flatnonzero(last_of_tie)
    best_all_negative = (~reference).sum()  # a cut above every probability
    i = candidates[len(candidates) - 1 - int(np.argmax(agree[candidates][::-1]))]  # lowest of the best
    if best_all_negative > agree[i]:
        return float(np.nextafter(sorted_p[0], np.inf))
    return float(sorted_p[i])


def agreement(p: np.ndarray, labels: np.ndarray, p_ref: np.ndarray, labels_ref: np.ndarray) -> dict:
    """Decision agreement and mean |dp| of one value's scores against the reference's."""
    return {"decision": float((labels == labels_ref).mean()) if len(p) else None,
            "mean_abs_dp": float(np.abs(p - p_ref).mean()) if len(p) else None, "n_texts": int(len(p))}


def evaluate_student(model, tokenizer, value_ids: list[str], parts: dict[str, Part],
                     teacher_thresholds: list[float], rule: WindowRule, device: torch.device,
                     token_budget: int = DEFAULT_TOKEN_BUDGET) -> dict:
    """Per value: temperature and threshold fitted to the ensemble on `parts["validation"]`, then on
    `parts["test"]` (held out) agreement and mean |dp| against the ensemble, and on its gold rows
    the student's and the ensemble's test metrics and the student's calibration (ECE)."""
    k = len(value_ids)
    scored = {p: score_margins(model, tokenizer, k, True, parts[p].texts, rule, token_budget, device)
              for p in ("validation", "test")}
    val, test = parts["validation"], parts["test"]
    gold_rows = ~np.isnan(test.gold).any(axis=1)
    evaluators = {}
    for j, value_id in enumerate(value_ids):
        temperature = fit_temperature(lambda t, j=j: soft_log_loss(
            val.teacher[:, j], scored["validation"].probs(j, t, rule.aggregate)))
        threshold = best_agreement_threshold(val.teacher_labels[:, j],
                                             scored["validation"].probs(j, temperature, rule.aggregate))
        p = scored["test"].probs(j, temperature, rule.aggregate)
        labels = p >= threshold
        y = test.gold[gold_rows, j].astype(int)
        evaluators[value_id] = {
            "threshold": threshold, "temperature": temperature,
            "metrics": binary_metrics(y, p[gold_rows], threshold),
            "ensemble_metrics": binary_metrics(y, test.teacher[gold_rows, j], teacher_thresholds[j]),
            "calibration": {"bins": ECE_BINS, "ece_before": expected_calibration_error(
                y, scored["test"].probs(j, 1.0, rule.aggregate)[gold_rows]),
                "ece_after": expected_calibration_error(y, p[gold_rows])},
            "agreement": {
                **agreement(p, labels, test.teacher[:, j], test.teacher_labels[:, j]),
                "gold_test": agreement(p[gold_rows], labels[gold_rows], test.teacher[gold_rows, j],
                                       test.teacher_labels[gold_rows, j]),
                "corpus_test": agreement(p[~gold_rows], labels[~gold_rows], test.teacher[~gold_rows, j],
                                         test.teacher_labels[~gold_rows, j])},
        }
    return {"window": rule.to_dict(), "evaluators": evaluators}
