"""The plain-torch training pieces, without Ray: the loss falls, order and sums are exact."""

import numpy as np
import pytest
import torch

from valuecsv_ray.backbone import tiny_model, tiny_tokenizer
from valuecsv_ray.scoring.core import margins, window_probabilities
from valuecsv_ray.train.loop import (
    WeightedLoss,
    encode,
    loss_sums,
    make_loss,
    predict_logits,
    train_epoch,
)

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_training_lowers_the_loss(toy):
    ids, targets, pad_id = toy
    torch.manual_seed(0)
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss_fn = make_loss(targets, multi_label=False, weighting="balanced")
    rng = np.random.default_rng(0)
    losses = [
        train_epoch(
            model, ids, targets, rng.permutation(len(ids)), 8, optimizer, scheduler, loss_fn, CPU, pad_id
        ).mean_loss
        for _ in range(6)
    ]
    assert losses[-1] < 0.5 * losses[0], losses
    logits = predict_logits(model, ids, np.arange(len(ids)), 16, CPU, pad_id)
    prob = window_probabilities(margins(logits, [1], multi_label=False).numpy())[:, 0]  # the scorer's
    assert ((prob >= 0.5) == targets).mean() >= 0.9


def test_encode_truncates_and_does_not_pad(toy):
    tokenizer = tiny_tokenizer()
    long_text, short_text = "好" * 100, "坏"
    ids = encode(tokenizer, [long_text, short_text], max_length=16)
    assert [len(x) for x in ids] == [16, 3]
    assert ids[1] == [tokenizer.cls_token_id, tokenizer.convert_tokens_to_ids("坏"), tokenizer.sep_token_id]
    assert ids[0][0] == tokenizer.cls_token_id and ids[0][-1] == tokenizer.sep_token_id


def test_predict_logits_keeps_input_order(toy):
    ids, _, pad_id = toy
    model = tiny_model()
    order = np.random.default_rng(1).permutation(len(ids))[:20]
    batched = predict_logits(model, ids, order, 8, CPU, pad_id)
    one_by_one = torch.cat([predict_logits(model, ids, [i], 1, CPU, pad_id) for i in order])
    assert batched.shape == (20, 2)
    torch.testing.assert_close(batched, one_by_one, rtol=1e-4, atol=1e-5)
    assert predict_logits(model, ids, np.array([], dtype=int), 8, CPU, pad_id).numel() == 0


def _logits_and_targets(multi_label: bool, n: int = 40):
    g = torch.Generator().manual_seed(5)
    if multi_label:
        logits = torch.randn(n, 12, generator=g)
        targets = (torch.rand(n, 12, generator=g) < 0.3).numpy().astype(np.int8)
    else:
        logits = torch.randn(n, 2, generator=g)
        targets = (torch.rand(n, generator=g) < 0.25).numpy().astype(np.int64)
    return logits, targets


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("weighting", ["balanced", "none"])
def test_loss_sums_over_shards_add_up_to_the_whole(multi_label, weighting):
    logits, targets = _logits_and_targets(multi_label)
    loss_fn = make_loss(targets, multi_label=multi_label, weighting=weighting)
    assert (loss_fn.weight is None) == (weighting == "none")
    whole = float(loss_fn(logits, torch.as_tensor(targets)))
    cut = 13
    parts = [loss_sums(loss_fn, logits[:cut], targets[:cut]), loss_sums(loss_fn, logits[cut:], targets[cut:])]
    total, norm = (sum(x) for x in zip(*parts, strict=True))
    assert total / norm == pytest.approx(whole, rel=1e-5)
    whole_total, whole_norm = loss_sums(loss_fn, logits, targets)
    assert total == pytest.approx(whole_total, rel=1e-5) and norm == pytest.approx(whole_norm, rel=1e-5)
    assert loss_sums(loss_fn, logits[:0], targets[:0]) == (0.0, 0.0)


def test_unweighted_binary_loss_is_cross_entropy():
    logits, targets = _logits_and_targets(False)
    got = WeightedLoss(False, None)(logits, torch.as_tensor(targets))
    torch.testing.assert_close(got, torch.nn.functional.cross_entropy(logits, torch.as_tensor(targets)))


def test_balanced_weights_are_n_over_two_n_class():
    targets = np.array([0] * 6 + [1] * 2)
    loss_fn = make_loss(targets, multi_label=False, weighting="balanced")
    torch.testing.assert_close(loss_fn.weight, torch.tensor([8 / 12, 8 / 4]))


def test_balanced_binary_weights_need_both_classes():
    assert make_loss(np.zeros(10), multi_label=False, weighting="balanced").weight is None


def test_balanced_multilabel_pos_weight_is_negatives_over_positives():
    targets = np.zeros((10, 12), dtype=np.int8)
    targets[:2, 0] = 1  # 2 positives, 8 negatives
    targets[:5, 1] = 1  # 5 and 5
    loss_fn = make_loss(targets, multi_label=True, weighting="balanced")
    expected = torch.ones(12)
    expected[0], expected[1] = 4.0, 1.0  # a value with no positives keeps weight 1
    torch.testing.assert_close(loss_fn.weight, expected)
