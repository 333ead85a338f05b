"""The offline tiny BERT: its vocabulary, determinism, and round trip through an HF folder."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from valuecsv_ray.backbone import (
    BackboneError,
    load_backbone,
    save_tiny_backbone,
    tiny_model,
    tiny_tokenizer,
    tiny_vocab,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SENTENCE = "他说：“中国要富强、民主！”然后用GPT-4写了3段代码，共100字。"


def test_vocab_covers_ascii_cjk_and_punctuation():
    vocab = set(tiny_vocab())
    assert {chr(c) for c in range(0x21, 0x7F)} <= vocab
    assert {"，", "。", "“", "”", "中", "国", "\u4e00", "\u9fff", "[UNK]", "[PAD]"} <= vocab
    assert len(tiny_vocab()) == len(vocab)  # no duplicates


def test_chinese_sentence_has_no_unknown_tokens():
    tokenizer = tiny_tokenizer()
    tokens = tokenizer.tokenize(SENTENCE)
    assert "[UNK]" not in tokens
    assert "中" in tokens and "，" in tokens and "“" in tokens
    ids = tokenizer(SENTENCE)["input_ids"]
    assert tokenizer.unk_token_id not in ids


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_model_is_identical_every_time_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(4)
    torch.manual_seed(123)
    first = tiny_model()
    second = tiny_model()
    assert torch.equal(torch.rand(4), expected_next)
    assert _same_weights(first, second)


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    return save_tiny_backbone(tmp_path_factory.mktemp("tiny"))


def test_saved_tiny_backbone_loads_with_plain_transformers(saved_tiny):
    assert (saved_tiny / "config.json").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(saved_tiny).eval()
    tokenizer = AutoTokenizer.from_pretrained(saved_tiny)
    assert tokenizer(SENTENCE)["input_ids"] == tiny_tokenizer()(SENTENCE)["input_ids"]

    reference = tiny_model().eval()
    batch = tiny_tokenizer()(SENTENCE, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference(**batch).logits)


def test_load_backbone_from_folder_gives_multilabel_head(saved_tiny):
    tokenizer, model = load_backbone(str(saved_tiny), num_labels=12, multi_label=True)
    assert model.config.num_labels == 12
    assert model.config.problem_type == "multi_label_classification"
    with torch.no_grad():
        logits = model.eval()(**tokenizer(SENTENCE, return_tensors="pt")).logits
    assert logits.shape == (1, 12)


def test_load_backbone_tiny_binary():
    tokenizer, model = load_backbone("tiny", num_labels=2)
    assert model.config.problem_type == "single_label_classification"
    assert model.config.num_labels == 2
    assert tokenizer.pad_token_id == 0


def test_missing_backbone_is_named(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError) as e:
        load_backbone("/nonexistent/x", 2)
    assert "'/nonexistent/x'" in str(e.value)
    assert "tiny" in str(e.value)
