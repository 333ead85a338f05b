"""Backbones: any Hugging Face model name or folder, or the offline `tiny` BERT built here.

    tokenizer, model = load_backbone("bert-base-chinese", num_labels=2)
    tokenizer, model = load_backbone("tiny", num_labels=3, multi_label=True)
    save_tiny_backbone(Path("backbones/tiny"))  # an ordinary HF folder

`tiny` needs no download: a character vocabulary (ASCII, CJK punctuation and full-width
forms, CJK Unified Ideographs) and a 2-layer BertConfig, initialised from a fixed seed, so
every Ray worker on every node builds the identical model without shipping files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from valuecsv_ray.errors import ValuecsvError

log = logging.getLogger(__name__)

TINY = "tiny"
TINY_SEED = 20240601
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_CHAR_RANGES = (
    (0x21, 0x7E),  # printable ASCII
    (0x2010, 0x2027),  # general punctuation: dashes, quotes, ellipsis
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0xFF01, 0xFF5E),  # full-width ASCII forms (，！？：； ...)
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
)


def tiny_vocab() -> list[str]:
    """Special tokens, one token per character, and '##' pieces for ASCII letters/digits."""
    chars = [chr(c) for lo, hi in _CHAR_RANGES for c in range(lo, hi + 1)]
    pieces = [f"##{c}" for c in map(chr, range(0x21, 0x7F)) if c.isalnum()]
    return [*SPECIAL_TOKENS, *chars, *pieces]


def tiny_tokenizer(max_length: int = 512) -> PreTrainedTokenizerBase:
    vocab = {token: i for i, token in enumerate(tiny_vocab())}
    return BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=max_length)


def tiny_config(num_labels: int, multi_label: bool) -> BertConfig:
    return BertConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        num_labels=num_labels,
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )


def tiny_model(num_labels: int = 2, multi_label: bool = False) -> PreTrainedModel:
    """The tiny BERT, identical on every call (seeded init, RNG state restored after)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        return BertForSequenceClassification(tiny_config(num_labels, multi_label))


def save_tiny_backbone(out: Path) -> Path:
    """Write the tiny backbone as an ordinary HF folder (weights, config, tokenizer)."""
    out.mkdir(parents=True, exist_ok=True)
    tiny_model().save_pretrained(out)
    tiny_tokenizer().save_pretrained(out)
    return out


def load_backbone(
    name_or_path: str, num_labels: int, multi_label: bool = False
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and a sequence classifier with a fresh `num_labels` head."""
    if name_or_path == TINY:
        return tiny_tokenizer(), tiny_model(num_labels, multi_label)
    problem = "multi_label_classification" if multi_label else "single_label_classification"
    tokenizer = load_tokenizer(name_or_path)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            name_or_path, num_labels=num_labels, problem_type=problem,
            ignore_mismatched_sizes=True,
        )
    except OSError as e:
        raise _not_loaded(name_or_path, e) from e
    return tokenizer, model


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a backbone (as `load_backbone` gives it), without its weights."""
    if name_or_path == TINY:
        return tiny_tokenizer()
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except OSError as e:
        raise _not_loaded(name_or_path, e) from e


def _not_loaded(name_or_path: str, error: OSError) -> BackboneError:
    return BackboneError(
        f"could not load backbone {name_or_path!r}: {error}. Give a local folder holding "
        "config.json, weights and tokenizer files, a model name on a reachable Hugging "
        f"Face hub (e.g. bert-base-chinese), or '{TINY}' for the offline tiny BERT."
    )


@contextmanager
def quiet_hf_progress() -> Iterator[None]:
    """Hide transformers' per-file load/save bars (an ensemble would print two per model)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class BackboneError(ValuecsvError, RuntimeError):
    """A backbone name or folder that cannot be loaded."""
