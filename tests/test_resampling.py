"""The bootstrap of valuecsv_ray.resampling against scipy.stats.bootstrap (same Generator, same draws:
the same distribution and percentile interval), its shared resamples across columns, the chunks
that bound its memory, the paired difference, and the bootstrap p-values."""

import math

import numpy as np
import pytest
from scipy import stats

from valuecsv_ray import resampling
from valuecsv_ray.resampling import (
    N_BOOT,
    bootstrap_mean_ci,
    bootstrap_means,
    bootstrap_p_values,
    paired_bootstrap_diffs,
    percentile_interval,
)


def scipy_bootstrap(x: np.ndarray, n_boot: int, seed: int, batch: int | None = None):
    return stats.bootstrap((x,), np.mean, axis=0, vectorized=True, method="percentile",
                           n_resamples=n_boot, batch=batch, rng=np.random.default_rng(seed))


@pytest.mark.parametrize("shape,seed", [((12,), 0), ((30, 3), 5), ((7, 1), 11)])
def test_distribution_and_interval_equal_scipy(shape, seed):
    x = np.random.default_rng(seed + 100).normal(size=shape)
    boot = bootstrap_means(x, 400, seed)
    ref = scipy_bootstrap(x, 400, seed)
    assert boot.shape == (400, *shape[1:])
    np.testing.assert_allclose(boot, np.moveaxis(ref.bootstrap_distribution, -1, 0), rtol=0, atol=1e-12)
    lo, hi = percentile_interval(boot)
    np.testing.assert_allclose(lo, ref.confidence_interval.low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hi, ref.confidence_interval.high, rtol=0, atol=1e-12)


def test_chunks_draw_as_scipy_batches(monkeypatch):
    x = np.random.default_rng(3).random((9, 2))
    monkeypatch.setattr(resampling, "_BOOT_CELLS", 9 * 7)  # 7 resamples per chunk
    boot = bootstrap_means(x, 50, seed=2)
    ref = scipy_bootstrap(x, 50, seed=2, batch=7)
    np.testing.assert_allclose(boot, ref.bootstrap_distribution.T, rtol=0, atol=1e-12)


def test_columns_share_each_resample_and_seeds_matter():
    x = np.random.default_rng(0).random((25, 1))
    boot = bootstrap_means(np.hstack([x, x, 2 * x]), 300, seed=4)
    assert np.array_equal(boot[:, 0], boot[:, 1])
    np.testing.assert_allclose(boot[:, 2], 2 * boot[:, 0])
    np.testing.assert_allclose(bootstrap_means(x, 300, seed=4), boot[:, :1], rtol=1e-12)
    assert not np.allclose(bootstrap_means(x, 300, seed=5), boot[:, :1])


def test_paired_diffs_resample_rows_together():
    rng = np.random.default_rng(1)
    a = rng.random((40, 3))
    b = a - 0.1 + rng.normal(scale=0.01, size=a.shape)  # paired: a - b is 0.1 +- a little
    diffs = paired_bootstrap_diffs(a, b, 500, seed=0)
    np.testing.assert_array_equal(diffs, bootstrap_means(a - b, 500, seed=0))
    lo, hi = percentile_interval(diffs)
    assert (hi - lo < 0.02).all() and (abs((lo + hi) / 2 - 0.1) < 0.01).all()  # unpaired: ~0.2 wide
    with pytest.raises(ValueError, match="same shape"):
        paired_bootstrap_diffs(a, b[:-1])


def test_mean_ci():
    values = np.random.default_rng(2).random(50)
    lo, hi = bootstrap_mean_ci(values, seed=0)
    ref = scipy_bootstrap(values, N_BOOT, seed=0).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert lo < values.mean() < hi
    assert all(math.isnan(v) for v in bootstrap_mean_ci(np.array([0.5])))
    assert all(math.isnan(v) for v in bootstrap_mean_ci(np.array([])))


def test_refusals():
    with pytest.raises(ValueError, match="n_boot must be >= 1"):
        bootstrap_means(np.ones(3), 0)
    with pytest.raises(ValueError, match="no rows"):
        bootstrap_means(np.ones((0, 2)), 10)


def test_bootstrap_p_values():
    boot = np.array([[0.1, -0.1, 0.0], [0.2, 0.1, 0.0], [0.3, 0.2, 0.0], [0.4, 0.3, 0.0]])
    # column 0: none <= 0 -> 2 * 1/5; column 1: one <= 0 -> 2 * 2/5; column 2: all == 0 -> capped at 1
    np.testing.assert_allclose(bootstrap_p_values(boot), [0.4, 0.8, 1.0])
