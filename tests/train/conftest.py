"""Shared pieces of the training tests. Ray Train tests use the session `ray_local` fixture from
tests/conftest.py."""

import numpy as np
import pytest

from valuecsv_ray.backbone import tiny_tokenizer
from valuecsv_ray.train.loop import encode


def _toy_task(n: int = 64) -> tuple[list[str], np.ndarray]:
    """Texts holding 好 are positive, texts holding 坏 negative; the rest is filler."""
    rng = np.random.default_rng(0)
    filler = list("今天我们一起去看这本书的人说天气")
    texts, targets = [], []
    for i in range(n):
        words = list(rng.choice(filler, size=int(rng.integers(4, 12))))
        words.insert(int(rng.integers(0, len(words) + 1)), "好" if i % 2 else "坏")
        texts.append("".join(words))
        targets.append(i % 2)
    return texts, np.array(targets)


@pytest.fixture(scope="module")
def toy():
    """(token ids, targets, pad id) of a toy task a tiny BERT learns in a few epochs."""
    texts, targets = _toy_task()
    tokenizer = tiny_tokenizer()
    return encode(tokenizer, texts, max_length=32), targets, tokenizer.pad_token_id
