"""The per-group statistics of the audit, as a named table: each entry declares its columns (they
make up STATS_SCHEMA after model, scope, key and n) and computes them from a group's per-text
probabilities `p` and labels `y` (of a value, a group of values, or all of them).

    row = {"n": len(p), **compute(p, y)}          # every statistic, in STATISTICS order
    STATISTICS["positive"].columns                # (pos_rate, pos_lo, pos_hi)

Adding a per-value statistic is one entry in STATISTICS (its function and its documented columns):
stats.parquet/.csv, DuckDB and pandas readers and `audit`'s table get the columns from here.
No torch, no Ray.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from valuecsv_ray.errors import ValuecsvError

Z95 = 1.96  # two-sided 95% normal quantile, for the CI of the mean


class StatisticError(ValuecsvError, ValueError):
    """A statistic that cannot be computed (e.g. an interval of no observations)."""


@dataclass(frozen=True)
class Statistic:
    """One statistic: its columns (name, comment) and the function that fills them."""

    name: str
    columns: tuple[tuple[str, str], ...]  # (column, what it holds), all float64, not null
    compute: Callable[[np.ndarray, np.ndarray], dict[str, float]]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (stays inside [0, 1], sane at 0 and n):
    scipy.stats.binomtest(successes, n).proportion_ci(method="wilson")."""
    if n <= 0:
        raise StatisticError(f"Wilson interval needs n > 0, got n={n}")
    from scipy.stats import binomtest  # here: it takes a second to import, and the leaderboard imports us

    interval = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def _mean(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    mean = float(p.mean())
    half = Z95 * _std(p) / math.sqrt(len(p))
    return {"mean": mean, "mean_lo": mean - half, "mean_hi": mean + half}


def _std(p: np.ndarray) -> float:
    return float(p.std(ddof=1)) if len(p) > 1 else 0.0


def _spread(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    p10, p50, p90 = (float(q) for q in np.percentile(p, [10, 50, 90]))
    return {"std": _std(p), "p10": p10, "p50": p50, "p90": p90}


def _positive(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    lo, hi = wilson_interval(int(y.sum()), len(y))
    return {"pos_rate": float(y.mean()), "pos_lo": lo, "pos_hi": hi}


STATISTICS: dict[str, Statistic] = {s.name: s for s in (
    Statistic("mean", (("mean", "mean probability"),
                       ("mean_lo", "95% CI of the mean (normal approx.: mean -+ 1.96 std/sqrt(n))"),
                       ("mean_hi", "")), _mean),
    Statistic("spread", (("std", "sample std of the probability (ddof=1; 0 for one text)"),
                         ("p10", "percentiles of the probability"), ("p50", ""), ("p90", "")), _spread),
    Statistic("positive", (("pos_rate", "share labelled positive (probability >= the value's threshold)"),
                           ("pos_lo", "95% Wilson interval of pos_rate"), ("pos_hi", "")), _positive),
)}


def statistic_fields() -> list[pa.Field]:
    """The columns of every statistic, in order, each with its comment as field metadata."""
    return [pa.field(name, pa.float64(), nullable=False, metadata={"doc": doc} if doc else None)
            for stat in STATISTICS.values() for name, doc in stat.columns]


def compute(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every statistic of one group of texts; each returns exactly the columns it declares."""
    out: dict[str, float] = {}
    for stat in STATISTICS.values():
        values = stat.compute(p, y)
        declared = [name for name, _ in stat.columns]
        if list(values) != declared:
            raise StatisticError(f"statistic {stat.name!r} returned {list(values)}, declared {declared}")
        out.update(values)
    return out
