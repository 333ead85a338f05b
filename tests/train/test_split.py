"""The seeded, stratified train/validation/test split."""

import numpy as np
import pytest

from valuecsv_ray.train.split import DEFAULT_FRACTIONS, PARTS, make_split


@pytest.fixture(scope="module")
def toy_labels() -> np.ndarray:
    return (np.random.default_rng(0).random((300, 12)) < np.linspace(0.05, 0.6, 12)).astype(np.int8)


@pytest.fixture(scope="module")
def valuecsv5000_split(valuecsv5000):
    return make_split(valuecsv5000.labels, seed=42)


def test_same_seed_same_split_other_seed_other_split(toy_labels):
    a, b, c = (make_split(toy_labels, seed) for seed in (7, 7, 8))
    for part in PARTS:
        np.testing.assert_array_equal(a.indices[part], b.indices[part])
    assert any(not np.array_equal(a.indices[p], c.indices[p]) for p in PARTS)
    assert a.to_json() == b.to_json()


def test_parts_are_disjoint_and_cover_every_row(toy_labels):
    split = make_split(toy_labels, seed=3)
    everything = np.concatenate([split.indices[p] for p in PARTS])
    assert len(everything) == len(toy_labels)
    assert set(everything.tolist()) == set(range(len(toy_labels)))
    assert sum(split.counts().values()) == len(toy_labels)


def test_rows_without_labels_are_split_too():
    split = make_split(np.zeros((50, 12), dtype=np.int8), seed=1)
    assert split.counts() == {"train": 35, "validation": 10, "test": 5}


def test_valuecsv5000_sizes_near_70_20_10(valuecsv5000_split, valuecsv5000):
    n = len(valuecsv5000)
    everything = np.concatenate([valuecsv5000_split.indices[p] for p in PARTS])
    assert sorted(everything.tolist()) == list(range(n))
    for part, fraction in zip(PARTS, DEFAULT_FRACTIONS, strict=True):
        assert abs(valuecsv5000_split.counts()[part] - fraction * n) <= 0.01 * fraction * n, part


def test_valuecsv5000_label_rates_match_in_every_part(valuecsv5000_split, valuecsv5000):
    labels = valuecsv5000.labels
    overall = labels.mean(axis=0)
    for part in PARTS:
        rates = labels[valuecsv5000_split.indices[part]].mean(axis=0)
        worst = np.abs(rates - overall).max()
        assert worst <= 0.02, f"{part}: a positive rate is {worst:.3f} from the overall rate"


@pytest.mark.parametrize("fractions", [(0.7, 0.3), (0.7, 0.2, 0.2), (0.8, 0.2, 0.0), (1.1, -0.05, -0.05)])
def test_bad_fractions_raise(toy_labels, fractions):
    with pytest.raises(ValueError, match="fractions"):
        make_split(toy_labels, seed=0, fractions=fractions)


def test_too_few_rows_raise():
    with pytest.raises(ValueError, match="at least 3"):
        make_split(np.ones((2, 12)), seed=0)
