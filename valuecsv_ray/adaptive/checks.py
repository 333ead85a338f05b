"""Checks a candidate (generated) item passes before it is asked: language, length, not a near-duplicate.

    index = NgramIndex.from_items(bank["item_id"], bank["prompt"])
    reasons = check_candidates(["你如何看待……", ...], index, CheckConfig(language="zh"))
    # one entry per candidate: None (passes) or why it is rejected

Each check returns a rejection reason or None. Near-duplicates are found by character n-grams
(3-grams by default) of the text with whitespace and punctuation removed: the overlap
coefficient |A & B| / min(|A|, |B|) with any item in the bank (or accepted earlier in the same
batch); a candidate at or above `max_similarity` is rejected, naming the item it repeats. The
overlap coefficient, unlike Jaccard, also catches a bank item wrapped in a few new words.
No Ray, no torch.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

# Characters that count as the language's own script (the rest of the letters count against it).
SCRIPTS = {
    "zh": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]"),
    "en": re.compile(r"[A-Za-z]"),
}
_NOT_TEXT = re.compile(r"[\s\W_]+", re.UNICODE)  # whitespace, punctuation, symbols


@dataclass(frozen=True)
class CheckConfig:
    """Bounds a candidate item must meet."""

    language: str = "zh"  # one of SCRIPTS: the bank's language
    min_script_share: float = 0.6  # share of letters (digits, punctuation aside) in that script
    min_chars: int = 6  # length bounds, in characters of the stripped text (CValues has 6-long prompts)
    max_chars: int = 400
    ngram: int = 3  # character n-gram size of the near-duplicate check
    max_similarity: float = 0.7  # overlap coefficient at or above which a candidate is a duplicate

    def __post_init__(self) -> None:
        if self.language not in SCRIPTS:
            raise ValueError(f"unknown language {self.language!r}; available: {', '.join(SCRIPTS)}")


def check_language(text: str, config: CheckConfig = CheckConfig()) -> str | None:
    """Rejects a text whose letters are mostly not in the bank's script."""
    letters = [c for c in text if unicodedata.category(c)[0] in "LM"]
    if not letters:
        return "no letters"
    share = sum(bool(SCRIPTS[config.language].match(c)) for c in letters) / len(letters)
    if share < config.min_script_share:
        return (f"language: {share:.0%} of its letters are {config.language} script, "
                f"below {config.min_script_share:.0%}")
    return None


def check_length(text: str, config: CheckConfig = CheckConfig()) -> str | None:
    """Rejects a text shorter or longer than the bounds."""
    n = len(text.strip())
    if n < config.min_chars:
        return f"length: {n} characters, below the minimum {config.min_chars}"
    if n > config.max_chars:
        return f"length: {n} characters, above the maximum {config.max_chars}"
    return None


def ngrams(text: str, n: int = 3) -> frozenset[str]:
    """The character n-grams of a text after NFKC, case folding and removing spaces and punctuation
    (the whole text when it is shorter than n)."""
    core = _NOT_TEXT.sub("", unicodedata.normalize("NFKC", text).casefold())
    if len(core) < n:
        return frozenset([core]) if core else frozenset()
    return frozenset(core[i : i + n] for i in range(len(core) - n + 1))


class NgramIndex:
    """Items' n-gram sets with an inverted index, for the near-duplicate check."""

    def __init__(self, n: int = 3) -> None:
        self.n = n
        self._grams: dict[str, frozenset[str]] = {}
        self._postings: dict[str, list[str]] = defaultdict(list)

    @classmethod
    def from_items(cls, item_ids: Iterable[str], texts: Iterable[str], n: int = 3) -> NgramIndex:
        index = cls(n)
        for item_id, text in zip(item_ids, texts, strict=True):
            index.add(item_id, text)
        return index

    def add(self, item_id: str, text: str) -> None:
        grams = ngrams(text, self.n)
        self._grams[item_id] = grams
        for gram in grams:
            self._postings[gram].append(item_id)

    def most_similar(self, text: str) -> tuple[str | None, float]:
        """The indexed item with the highest overlap coefficient to `text`, and that coefficient."""
        grams = ngrams(text, self.n)
        shared = Counter(item for gram in grams for item in self._postings.get(gram, ()))
        best, best_sim = None, 0.0
        for item_id, count in shared.items():
            sim = count / max(1, min(len(grams), len(self._grams[item_id])))
            if sim > best_sim:
                best, best_sim = item_id, sim
        return best, best_sim


def check_duplicate(text: str, index: NgramIndex, config: CheckConfig = CheckConfig()) -> str | None:
    """Rejects a text too close to an indexed item, naming that item."""
    item_id, sim = index.most_similar(text)
    if item_id is not None and sim >= config.max_similarity:
        return (f"near-duplicate of item {item_id}: {config.ngram}-gram overlap {sim:.2f} "
                f">= {config.max_similarity}")
    return None


def check_item(text: str, index: NgramIndex, config: CheckConfig = CheckConfig()) -> str | None:
    """The first reason to reject a candidate (length, language, near-duplicate), or None."""
    return check_length(text, config) or check_language(text, config) or check_duplicate(text, index, config)


def check_candidates(texts: Iterable[str], index: NgramIndex, config: CheckConfig = CheckConfig(),
                     ids: Iterable[str] | None = None) -> list[str | None]:
    """One reason (or None) per candidate; a candidate that passes joins the index (as its id, or
    `candidate <position>`), so a later near-copy in the same batch is rejected too."""
    texts = list(texts)
    ids = list(ids) if ids is not None else [f"candidate {i}" for i in range(len(texts))]
    if index.n != config.ngram:
        raise ValueError(f"the index uses {index.n}-grams but the config asks for {config.ngram}-grams")
    reasons = []
    for item_id, text in zip(ids, texts, strict=True):
        reason = check_item(text, index, config)
        if reason is None:
            index.add(item_id, text)
        reasons.append(reason)
    return reasons
