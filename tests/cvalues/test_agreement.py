"""Krippendorff's alpha of cvalues.agreement against the `krippendorff` package (a test-only
dependency: it is GPL-3.0, this project Apache-2.0) on random rating tables with missing ratings,
and the rating summary's bootstrap interval from valuecsv_ray.resampling."""

import math

import krippendorff
import numpy as np
import pandas as pd
import pytest

from valuecsv_ray.cvalues.agreement import aggregate_ratings, krippendorff_alpha
from valuecsv_ray.resampling import bootstrap_mean_ci


def random_table(rng: np.random.Generator, scale: int) -> np.ndarray:
    """(raters, units) ratings on 1..scale, about a third missing (NaN); raters lean on a unit's
    'true' rating so that alpha is neither 0 nor 1."""
    n_raters, n_units = int(rng.integers(2, 6)), int(rng.integers(4, 40))
    truth = rng.integers(1, scale + 1, size=n_units)
    noise = rng.integers(-1, 2, size=(n_raters, n_units)) * (rng.random((n_raters, n_units)) < 0.4)
    table = np.clip(truth + noise, 1, scale).astype(float)
    table[rng.random(table.shape) < 0.35] = np.nan
    return table


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_equals_the_krippendorff_package(seed, level):
    rng = np.random.default_rng(seed)
    table = random_table(rng, scale=int(rng.integers(2, 8)))
    pairable = table[:, (~np.isnan(table)).sum(axis=0) >= 2]
    if len(np.unique(pairable[~np.isnan(pairable)])) < 2:
        pytest.skip("all pairable ratings equal: alpha is undefined (the package refuses the table)")
    expected = krippendorff.alpha(reliability_data=table, level_of_measurement=level)
    units = [list(column) for column in table.T]  # a unit per column, NaN = not rated
    assert krippendorff_alpha(units, level) == pytest.approx(expected, abs=1e-10)
    unrated = [[v for v in u if not math.isnan(v)] for u in units]  # the same units, NaNs left out
    assert krippendorff_alpha(unrated, level) == pytest.approx(expected, abs=1e-10)


def test_interval_alpha_on_real_valued_ratings_equals_the_package():
    rng = np.random.default_rng(7)
    table = rng.normal(size=(4, 25)) + rng.normal(size=25) * 2  # a shared unit effect
    table[rng.random(table.shape) < 0.3] = np.nan
    expected = krippendorff.alpha(reliability_data=table, level_of_measurement="interval")
    assert krippendorff_alpha(list(table.T), "interval") == pytest.approx(expected, abs=1e-10)


def test_summary_interval_is_the_shared_bootstrap_over_item_means():
    ratings = pd.DataFrame({"item": ["a", "a", "b", "c", "d", "e"], "source": "human",
                            "rater": ["r1", "r2", "r1", "r1", "r2", "r2"], "rating": [1, 3, 2, 3, 1, 2.0],
                            "model": "m", "domain_zh": "法律"})
    row = aggregate_ratings(ratings, n_boot=500, seed=3).query("scope == 'model'").iloc[0]
    item_means = np.array([2.0, 2.0, 3.0, 1.0, 2.0])  # a's two ratings averaged first
    assert row["mean"] == pytest.approx(item_means.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(bootstrap_mean_ci(item_means, 500, 3))
