"""Evaluate a trained model through the engine's scoring path (`scoring.core`).

    result = evaluate_model(model, tokenizer, ["freedom"], False, texts, targets, rule, device)

Validation and test texts are windowed, scored and aggregated exactly as `Ensemble.score` does
(same windows, padding, batching, margins, calibration and aggregation), so the threshold tuned
here is the threshold that applies to served and audited scores. Per value:
1. temperature: fitted on validation (lowest log-loss of the aggregated probabilities);
2. threshold: the cut with the best F1 on calibrated validation probabilities;
3. test metrics at that threshold, and calibration: ECE (15 bins) on test before (T = 1) and
   after temperature scaling;
4. the window rule on long texts: test texts joined 2-3 at a time (positive if any part is),
   scored with `max` and with `mean` aggregation at the tuned threshold, and with a threshold
   tuned on validation texts joined the same way, next to the single-text figures.

`reevaluate_registry` does the same for every evaluator of an existing registry
(`valuecsv-ray registry evaluate PATH`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from valuecsv_ray.config import DEFAULT_TOKEN_BUDGET
from valuecsv_ray.scoring.core import (
    AGGREGATIONS,
    Head,
    default_stride,
    owners_of,
    run_heads,
    split_windows,
    text_probabilities,
)
from valuecsv_ray.train.metrics import (
    ECE_BINS,
    best_f1_threshold,
    binary_metrics,
    expected_calibration_error,
    fit_temperature,
    log_loss,
)


@dataclass(frozen=True)
class WindowRule:
    """How texts are scored: window length, stride between windows, aggregation over windows."""

    max_length: int
    stride: int
    aggregate: str

    @classmethod
    def of(cls, max_length: int, stride: int | None, aggregate: str) -> WindowRule:
        return cls(max_length, stride or default_stride(max_length), aggregate)

    def to_dict(self) -> dict:
        return {"max_length": self.max_length, "stride": self.stride, "aggregate": self.aggregate}


@dataclass
class Scored:
    """Per-window margins of some texts, (n_windows, n_values), with each window's text."""

    margins: np.ndarray
    owners: np.ndarray
    n: int

    def probs(self, column: int, temperature: float, how: str) -> np.ndarray:
        return text_probabilities(self.margins[:, [column]], self.owners, self.n, temperature, how)[:, 0]

    @property
    def windows(self) -> np.ndarray:
        return np.bincount(self.owners, minlength=self.n)


def score_margins(model, tokenizer, n_values: int, multi_label: bool, texts: list[str], rule: WindowRule,
                  token_budget: int, device: torch.device) -> Scored:
    """The model's margins on every window of `texts` (the engine's code path)."""
    per_text = split_windows(tokenizer, texts, rule.max_length, rule.stride)
    head = Head(model, list(range(n_values)), list(range(n_values)) if multi_label else [1] * n_values,
                multi_label)
    window_ids = [w for windows in per_text for w in windows]
    was_training = model.training
    model.eval()
    margins = run_heads([head], window_ids, tokenizer.pad_token_id, token_budget, device)
    model.train(was_training)
    return Scored(margins, owners_of(per_text), len(texts))


def join_texts(texts: list[str], targets: np.ndarray, seed: int) -> tuple[list[str], np.ndarray]:
    """Texts joined 2 or 3 at a time in a seeded random order; a joined text is positive for a
    value if any of its parts is."""
    rng = np.random.default_rng(seed)
    order, joined, labels, start = rng.permutation(len(texts)), [], [], 0
    targets = np.asarray(targets).reshape(len(texts), -1)
    while start + 2 <= len(order):
        size = min(int(rng.integers(2, 4)), len(order) - start)
        parts = order[start : start + size]
        joined.append("".join(texts[i] for i in parts))
        labels.append(targets[parts].max(axis=0))
        start += size
    return joined, np.asarray(labels).reshape(len(joined), targets.shape[1])


def evaluate_model(model, tokenizer, value_ids: list[str], multi_label: bool, texts: dict[str, list[str]],
                   targets: dict[str, np.ndarray], rule: WindowRule, device: torch.device,
                   token_budget: int = DEFAULT_TOKEN_BUDGET, seed: int = 0) -> dict:
    """Temperatures, thresholds, test metrics, calibration and the long-text measurement, per value."""
    k = len(value_ids)
    truth = {p: np.asarray(targets[p]).reshape(len(texts[p]), -1) for p in ("validation", "test")}
    joined = {p: join_texts(texts[p], truth[p], seed) for p in ("validation", "test")}
    scored = {p: score_margins(model, tokenizer, k, multi_label, texts[p], rule, token_budget, device)
              for p in ("validation", "test")}
    long = {p: score_margins(model, tokenizer, k, multi_label, joined[p][0], rule, token_budget, device)
            for p in ("validation", "test")}
    evaluators = {}
    for j, value_id in enumerate(value_ids):
        y_val, y_test = truth["validation"][:, j], truth["test"][:, j]
        val = scored["validation"]
        temperature = fit_temperature(
            lambda t, j=j, y=y_val, val=val: log_loss(y, val.probs(j, t, rule.aggregate)))
        p_val = val.probs(j, temperature, rule.aggregate)
        threshold = best_f1_threshold(y_val, p_val)
        p_test = scored["test"].probs(j, temperature, rule.aggregate)
        metrics = binary_metrics(y_test, p_test, threshold)
        evaluators[value_id] = {
            "threshold": threshold, "temperature": temperature, "metrics": metrics,
            "calibration": {
                "bins": ECE_BINS,
                "ece_before": expected_calibration_error(
                    y_test, scored["test"].probs(j, 1.0, rule.aggregate)),
                "ece_after": expected_calibration_error(y_test, p_test),
            },
            "long_texts": _long_text_figures(j, long, joined, temperature, threshold, metrics, p_test),
        }
    return {"window": rule.to_dict(), "evaluators": evaluators}


def _long_text_figures(j: int, long: dict[str, Scored], joined: dict, temperature: float, threshold: float,
                       single: dict, p_single: np.ndarray) -> dict:
    """F1 and positive rate of each aggregation on joined test texts, at the tuned threshold and
    at a threshold tuned on joined validation texts."""
    y_val, y_test = joined["validation"][1][:, j], joined["test"][1][:, j]
    out = {"n_texts": int(len(y_test)), "mean_windows": float(long["test"].windows.mean()),
           "multi_window_share": float((long["test"].windows > 1).mean()),
           "true_positive_rate": float(y_test.mean()),
           "single": {"f1": single["f1"], "positive_rate": float((p_single >= threshold).mean())}}
    for how in AGGREGATIONS:
        p_test = long["test"].probs(j, temperature, how)
        own = best_f1_threshold(y_val, long["validation"].probs(j, temperature, how))
        out[how] = {"f1": binary_metrics(y_test, p_test, threshold)["f1"],
                    "positive_rate": float((p_test >= threshold).mean()),
                    "own_threshold": own, "f1_own_threshold": binary_metrics(y_test, p_test, own)["f1"]}
    return out


def reevaluate_registry(path: Path, device: str | None = None,
                        token_budget: int = DEFAULT_TOKEN_BUDGET) -> dict:
    """Evaluate every evaluator of a registry again through the engine's path (for registries
    written before calibration and the window rule were recorded, or after changing the rule in
    job.json): the same data (its sha256 is checked) and split, new evaluator.json entries and
    manifest. Returns the manifest."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from valuecsv_ray.backbone import quiet_hf_progress
    from valuecsv_ray.config import Hyperparameters, task_ids
    from valuecsv_ray.registry import manifest as reg
    from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy
    from valuecsv_ray.train.annotated import load_annotated

    job = json.loads((path / reg.JOB_FILE).read_text(encoding="utf-8"))
    config = job["config"]
    taxonomy = Taxonomy.from_dict(job["taxonomy"]) if "taxonomy" in job else load_taxonomy()
    data = load_annotated(config["data"], taxonomy, skip_bad_rows=config.get("skip_bad_rows", False),
                          limit=config.get("limit_rows"))
    if data.sha256 != job["data"]["sha256"]:
        raise reg.RegistryError(f"{config['data']} is not the data {path} was trained on (sha256 "
                                f"{data.sha256[:12]} != {job['data']['sha256'][:12]})")
    split = json.loads((path / reg.SPLIT_FILE).read_text(encoding="utf-8"))["indices"]
    hp = Hyperparameters(**{k: v for k, v in config.items() if k in Hyperparameters.__dataclass_fields__})
    rule = WindowRule.of(hp.max_length, hp.stride, hp.aggregate)
    run_on = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    done = sorted(p.name for p in (path / reg.EVALUATORS).iterdir() if reg.evaluator_done(path, p.name))
    for task_id in done:
        folder = path / reg.EVALUATORS / task_id
        info = json.loads((folder / reg.EVALUATOR_FILE).read_text(encoding="utf-8"))
        value_ids = list(info["evaluators"])
        columns = [taxonomy.ids.index(v) for v in value_ids]
        with quiet_hf_progress():
            model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
            model = model.to(run_on).eval()
        multi = model.config.problem_type == "multi_label_classification"
        texts = {p: [data.texts[i] for i in split[p]] for p in ("validation", "test")}
        targets = {p: data.labels[split[p]][:, columns] for p in ("validation", "test")}
        tokenizer = AutoTokenizer.from_pretrained(folder)
        result = evaluate_model(model, tokenizer, value_ids, multi, texts, targets, rule, run_on,
                                token_budget, seed=hp.seed)
        reg.write_json(folder / reg.EVALUATOR_FILE, {**info, **result})
    tasks = task_ids(config.get("mode", "binary"), config.get("values", "all"), taxonomy)
    return reg.write_manifest(path, tasks)

