"""The scoring primitives: windows cover a text, batches fit the budget, margins become
calibrated probabilities, aggregation over windows is max or mean."""

import numpy as np
import pytest
import torch

from valuecsv_ray.backbone import tiny_model, tiny_tokenizer
from valuecsv_ray.scoring.core import (
    Head,
    aggregate,
    budget_batches,
    check_texts,
    default_stride,
    margins,
    owners_of,
    pad_batch,
    run_heads,
    split_windows,
    text_probabilities,
    window_probabilities,
)

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _text(n: int, offset: int = 0) -> str:
    """n distinct CJK characters; the tiny tokenizer makes one token of each, so a window's
    tokens show where in the text it starts."""
    return "".join(chr(0x4E00 + offset + i) for i in range(n))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize(("n_tokens", "max_length", "stride"), [
    (30, 10, 4), (31, 10, 8), (8, 10, 4), (9, 10, 4), (100, 16, 7), (57, 12, 1), (40, 10, default_stride(10)),
])
def test_windows_cover_the_text_and_the_last_ends_at_its_end(tokenizer, n_tokens, max_length, stride):
    text = _text(n_tokens)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == n_tokens
    (windows,) = split_windows(tokenizer, [text], max_length, stride)
    body = max_length - 2
    assert all(len(w) <= max_length for w in windows)
    assert all(w[0] == tokenizer.cls_token_id and w[-1] == tokenizer.sep_token_id for w in windows)
    bodies = [w[1:-1] for w in windows]
    # each window is a contiguous slice of the text, starts `stride` apart except the last one
    starts = [ids.index(b[0]) for b in bodies]
    assert all(ids[s : s + len(b)] == b for s, b in zip(starts, bodies, strict=True))
    assert starts[0] == 0
    assert all(0 < b - a <= stride for a, b in zip(starts, starts[1:], strict=False))
    assert all(b - a == stride for a, b in zip(starts[:-2], starts[1:-1], strict=True))
    covered = np.zeros(n_tokens, dtype=bool)
    for s, b in zip(starts, bodies, strict=True):
        covered[s : s + len(b)] = True
    assert covered.all()
    assert bodies[-1] == ids[-len(bodies[-1]) :]  # the last window ends at the text's end
    if n_tokens <= body:
        assert windows == [[tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]]
    else:
        assert all(len(b) == body for b in bodies)  # full windows only
        assert len(windows) == len(range(0, n_tokens - body, stride)) + 1


def test_windows_per_text_and_their_owners(tokenizer):
    texts = [_text(5), _text(40, 3), _text(12, 7), _text(1)]
    per_text = split_windows(tokenizer, texts, max_length=12, stride=5)
    counts = [len(w) for w in per_text]
    assert counts == [1, len(range(0, 30, 5)) + 1, 2, 1]
    np.testing.assert_array_equal(owners_of(per_text), np.repeat(np.arange(4), counts))
    assert owners_of([]).shape == (0,)


def test_default_stride_is_half_a_window_body():
    assert default_stride(512) == 255
    assert default_stride(10) == 4
    assert default_stride(3) == 1


# ---------------------------------------------------------------- padding and batching


def test_pad_batch_pads_to_the_longest_with_a_mask():
    batch = pad_batch([[5, 6, 7], [8], [9, 10]], pad_id=0, device=CPU)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert batch["input_ids"].dtype == torch.long and batch["attention_mask"].dtype == torch.long


@pytest.mark.parametrize("budget", [64, 100, 512, 4096])
def test_budget_batches_fit_the_budget_and_cover_every_index_once(budget):
    lengths = np.random.default_rng(budget).integers(1, 64, size=300).tolist()
    batches = budget_batches(lengths, budget)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))  # every index exactly once
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= budget
    assert [lengths[i] for i in flat] == sorted(lengths)  # length-sorted, so padding stays small
    # greedy: the next row would not have fitted into the batch before it
    for before, after in zip(batches, batches[1:], strict=False):
        assert (len(before) + 1) * lengths[after[0]] > budget


def test_a_row_longer_than_the_budget_gets_a_batch_of_its_own():
    batches = budget_batches([10, 600, 20, 5], budget=100)
    assert [b.tolist() for b in batches] == [[3, 0, 2], [1]]
    assert budget_batches([], 100) == []


# ---------------------------------------------------------------- margins and heads


def test_binary_margin_is_the_logit_difference_and_its_sigmoid_is_softmax():
    logits = torch.tensor([[0.3, 1.2], [2.0, -1.0], [0.0, 0.0]])
    got = margins(logits, [1, 1, 1], multi_label=False)
    assert got.shape == (3, 3)
    expected = (logits[:, 1] - logits[:, 0]).unsqueeze(1).expand(-1, 3)
    torch.testing.assert_close(got, expected)
    softmax = torch.softmax(logits, -1)[:, 1].numpy()
    np.testing.assert_allclose(window_probabilities(got.numpy())[:, 0], softmax, rtol=1e-6)


def test_multilabel_margins_are_the_chosen_logits():
    logits = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    torch.testing.assert_close(margins(logits, [4, 0], multi_label=True), logits[:, [4, 0]])


def test_run_heads_fills_each_heads_columns_in_input_order(tokenizer):
    texts = [_text(n, n) for n in (3, 25, 9, 14, 1)]
    windows = [w for ws in split_windows(tokenizer, texts, 16, 7) for w in ws]
    one, two = tiny_model().eval(), tiny_model(3, multi_label=True).eval()
    heads = [Head(one, [2], [1], False), Head(two, [0, 1], [2, 0], True)]
    got = run_heads(heads, windows, tokenizer.pad_token_id, token_budget=64, device=CPU)
    assert got.shape == (len(windows), 3)
    with torch.no_grad():
        for i, w in enumerate(windows):
            ids = torch.tensor([w])
            a, b = one(input_ids=ids).logits[0], two(input_ids=ids).logits[0]
            np.testing.assert_allclose(got[i], [b[2], b[0], a[1] - a[0]], atol=1e-5)
    big_batches = run_heads(heads, windows, tokenizer.pad_token_id, token_budget=10_000, device=CPU)
    np.testing.assert_allclose(big_batches, got, atol=1e-5)  # the budget changes batching, not margins


# ---------------------------------------------------------------- probabilities and aggregation


def test_aggregate_max_and_mean_over_each_texts_windows():
    probs = np.array([[0.1, 0.9], [0.5, 0.3], [0.2, 0.2], [0.7, 0.0], [0.4, 0.6]], dtype=np.float32)
    owners = np.array([0, 0, 1, 2, 2])
    np.testing.assert_allclose(aggregate(probs, owners, 3, "max"), [[0.5, 0.9], [0.2, 0.2], [0.7, 0.6]])
    np.testing.assert_allclose(aggregate(probs, owners, 3, "mean"), [[0.3, 0.6], [0.2, 0.2], [0.55, 0.3]],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="aggregate must be one of"):
        aggregate(probs, owners, 3, "median")


@pytest.mark.parametrize("how", ["max", "mean"])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_text_probabilities_are_sigmoid_of_margin_over_temperature_aggregated(how, temperature):
    rng = np.random.default_rng(7)
    owners = np.repeat(np.arange(6), [1, 3, 2, 1, 4, 2])
    m = rng.normal(scale=3.0, size=(len(owners), 2)).astype(np.float32)
    got = text_probabilities(m, owners, 6, temperature, how)
    reduce = np.max if how == "max" else np.mean
    expected = np.array([reduce(_sigmoid(m[owners == t] / temperature), axis=0) for t in range(6)])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    if temperature != 1.0:
        assert not np.allclose(got, text_probabilities(m, owners, 6, 1.0, how), atol=1e-3)


def test_each_column_takes_its_own_temperature():
    m = np.array([[2.0, 2.0, -1.0]], dtype=np.float32)
    got = window_probabilities(m, np.array([1.0, 4.0, 0.5]))
    np.testing.assert_allclose(got, [_sigmoid([2.0, 0.5, -2.0])], rtol=1e-6)


# ---------------------------------------------------------------- inputs


def test_check_texts_names_the_bad_positions():
    check_texts(["好", " 有字 "])
    with pytest.raises(TypeError, match=r"score\(\[text\]\)"):
        check_texts("一句话")
    with pytest.raises(ValueError) as e:
        check_texts(["好", "", None, "  \n", 3])
    assert str(e.value).endswith("text 1: empty; text 2: NoneType; text 3: empty; text 4: int")
