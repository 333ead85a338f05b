"""A student's pieces without Ray: the soft-target loss, the agreement threshold, the evaluation
against its teacher, and the distill settings."""

import numpy as np
import pytest
import torch

from valuecsv_ray.backbone import load_backbone
from valuecsv_ray.config import ConfigError, load_distill_config
from valuecsv_ray.train.distill_eval import (
    Part,
    SoftTargetLoss,
    best_agreement_threshold,
    evaluate_student,
    soft_log_loss,
)
from valuecsv_ray.train.evaluate import WindowRule
from valuecsv_ray.train.loop import encode, train_epoch

CPU = torch.device("cpu")


def test_soft_target_loss_mixes_gold_only_where_there_is_gold():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    teacher = torch.tensor([[0.2, 0.9], [0.7, 0.1]])
    gold = torch.tensor([[1.0, 1.0], [float("nan"), float("nan")]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    loss = SoftTargetLoss(2, gold_weight=0.25)(logits, torch.cat([teacher, gold], dim=1))
    row0 = (0.75 * bce(logits[0], teacher[0], reduction="none")
            + 0.25 * bce(logits[0], gold[0], reduction="none"))
    row1 = bce(logits[1], teacher[1], reduction="none")
    assert loss.item() == pytest.approx(torch.cat([row0, row1]).mean().item(), rel=1e-6)
    only_teacher = SoftTargetLoss(2, gold_weight=0.0)(logits, torch.cat([teacher, gold], dim=1))
    assert only_teacher.item() == pytest.approx(bce(logits, teacher).item(), rel=1e-6)


@pytest.mark.parametrize(("reference", "prob", "expected"), [
    ([False, False, True, True], [0.1, 0.2, 0.6, 0.8], 0.6),  # a clean cut
    ([False, True, False, True], [0.1, 0.3, 0.5, 0.9], 0.3),  # ties in agreement: the lowest cut
    ([False, False], [0.3, 0.4], None),  # no positive: a cut above every probability
    ([True, True], [0.3, 0.4], 0.3),
])
def test_best_agreement_threshold(reference, prob, expected):
    cut = best_agreement_threshold(np.array(reference), np.array(prob))
    decisions = np.array(prob) >= cut
    best = max(((np.array(prob) >= t) == np.array(reference)).mean() for t in [*prob, 2.0])
    assert (decisions == np.array(reference)).mean() == best
    if expected is None:
        assert not decisions.any()
    else:
        assert cut == pytest.approx(expected)


def _soft_task(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Texts with 好 (value 0 likely) and 学 (value 1 likely); soft 'teacher' probabilities."""
    rng = np.random.default_rng(seed)
    filler = list("今天我们一起去看这本书的人说天气")
    texts, probs = [], []
    for _ in range(n):
        words = list(rng.choice(filler, size=int(rng.integers(4, 10))))
        good, study = rng.random() < 0.4, rng.random() < 0.3
        words += ["好"] * good + ["学"] * study
        rng.shuffle(words)
        texts.append("".join(words))
        probs.append([0.9 if good else 0.1, 0.8 if study else 0.15])
    return texts, np.array(probs, dtype=np.float32)


def test_student_learns_soft_targets_and_agrees_with_its_teacher(one_torch_thread):
    torch.manual_seed(0)
    tokenizer, model = load_backbone("tiny", 2, True)
    texts, teacher = _soft_task(160, seed=1)
    ids = encode(tokenizer, texts, 32)
    targets = np.concatenate([teacher, np.full_like(teacher, np.nan)], axis=1)
    loss_fn = SoftTargetLoss(2, gold_weight=0.3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    losses = [train_epoch(model, ids, targets, np.random.default_rng(e).permutation(len(ids)), 16, optimizer,
                          scheduler, loss_fn, CPU, tokenizer.pad_token_id).mean_loss for e in range(15)]
    assert losses[-1] < losses[0] - 0.1  # the soft targets' entropy is the floor, so not to zero

    thresholds = [0.5, 0.5]
    parts = {}
    for name, seed in (("validation", 2), ("test", 3)):
        t, p = _soft_task(60, seed)
        gold = (p > 0.5).astype(np.float32)
        gold[30:] = np.nan  # half the test texts have gold labels, half are corpus text
        parts[name] = Part(t, p, p >= 0.5, gold)
    result = evaluate_student(model, tokenizer, ["good", "study"], parts, thresholds,
                              WindowRule.of(32, None, "max"), CPU)
    for value in ("good", "study"):
        ev = result["evaluators"][value]
        assert ev["agreement"]["decision"] >= 0.9
        assert ev["agreement"]["n_texts"] == 60 and ev["agreement"]["gold_test"]["n_texts"] == 30
        assert ev["agreement"]["corpus_test"]["n_texts"] == 30
        assert ev["metrics"]["n_test"] == 30 and ev["ensemble_metrics"]["f1"] == 1.0
        assert 0 < ev["threshold"] < 1 and ev["temperature"] > 0
    assert result["window"] == {"max_length": 32, "stride": 15, "aggregate": "max"}


def test_soft_log_loss_is_lowest_at_the_targets():
    target = np.array([0.2, 0.7, 0.9])
    assert soft_log_loss(target, target) < soft_log_loss(target, np.array([0.3, 0.6, 0.8]))


def test_distill_config_names_every_bad_key():
    with pytest.raises(ConfigError) as e:
        load_distill_config(overrides={"gold_weight": 2, "holdout_fraction": 0.5, "name": "a/b",
                                       "teacher_actors": 0})
    message = str(e.value)
    for key in ("registry is required", "gold_weight", "holdout_fraction", "name", "teacher_actors"):
        assert key in message
    cfg = load_distill_config(overrides={"registry": "runs/x", "corpus": ["a.jsonl"], "backbone": "tiny",
                                         "learning_rate": "1e-3"})
    assert cfg.hparams.learning_rate == 1e-3 and cfg.corpus == ["a.jsonl"] and cfg.input.id_column == "id"


def test_shipped_distill_config_loads():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.yaml"
    cfg = load_distill_config(path, {"registry": "runs/x"})
    assert cfg.hparams.backbone == "tiny" and cfg.hparams.learning_rate == 2e-3
    assert cfg.window_pieces and cfg.raw_targets

