"""The named table of per-group statistics: its columns are STATS_SCHEMA's, and one new entry is
enough to add a statistic to every stats row."""

from __future__ import annotations

import numpy as np
import pytest

from valuecsv_ray.audit import schema, statistics, stats
from valuecsv_ray.audit.statistics import STATISTICS, Statistic, StatisticError, compute


def test_the_schema_is_the_keys_then_every_declared_column():
    declared = [name for stat in STATISTICS.values() for name, _ in stat.columns]
    assert schema.STATS_SCHEMA.names == ["model", "scope", "key", "n", *declared]
    assert declared[:3] == ["mean", "mean_lo", "mean_hi"] and "pos_hi" in declared
    assert schema.STATS_SCHEMA.field("mean").metadata == {b"doc": b"mean probability"}


def test_values_of_a_small_group():
    p = np.array([0.2, 0.4, 0.9, 0.5])
    y = p >= 0.5
    row = compute(p, y)
    assert row["mean"] == pytest.approx(0.5)
    half = 1.96 * p.std(ddof=1) / 2
    assert (row["mean_lo"], row["mean_hi"]) == pytest.approx((0.5 - half, 0.5 + half))
    assert row["pos_rate"] == 0.5 and row["pos_lo"] < 0.5 < row["pos_hi"]
    assert compute(np.array([0.3]), np.array([False]))["std"] == 0.0


def test_a_statistic_returning_other_columns_than_it_declares_is_refused(monkeypatch):
    broken = Statistic("broken", (("a", "declared"),), lambda p, y: {"b": 1.0})
    monkeypatch.setitem(STATISTICS, "broken", broken)
    with pytest.raises(StatisticError, match="'broken' returned \\['b'\\], declared \\['a'\\]"):
        compute(np.array([0.5]), np.array([True]))


def _entropy(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"entropy": float(np.mean(-(p * np.log2(p) + (1 - p) * np.log2(1 - p))))}


def test_one_entry_adds_its_columns_to_the_fields_and_every_stats_row(monkeypatch):
    """STATS_SCHEMA is built from statistic_fields() at import (test above), so a new entry in the
    module's table reaches the schema, the rows and the written files."""
    monkeypatch.setitem(STATISTICS, "entropy", Statistic("entropy", (("entropy", "mean entropy, bits"),),
                                                         _entropy))
    assert [f.name for f in statistics.statistic_fields()][-1] == "entropy"
    row = stats._summarise("m", "value", "freedom", np.array([0.5, 0.5]), np.array([True, False]))
    assert row["entropy"] == pytest.approx(1.0)
    assert list(row) == [*schema.STATS_SCHEMA.names, "entropy"]


def test_the_wilson_interval_refuses_no_observations():
    with pytest.raises(StatisticError, match="n > 0"):
        statistics.wilson_interval(0, 0)
