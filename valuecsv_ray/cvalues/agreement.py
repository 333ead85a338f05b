"""Summaries of a rating table: mean rating per model and per (model, domain), and rater agreement.

    from valuecsv_ray.cvalues.agreement import aggregate_ratings, format_summary
    print(format_summary(aggregate_ratings(read_ratings(Path("ratings.parquet")))))

The mean weighs each answer (item) once: an item's ratings are averaged first, then the items. Its
95% interval is a percentile bootstrap over items (valuecsv_ray.resampling, N_BOOT resamples,
seeded), so an item rated twice is resampled as one unit. Agreement uses the items rated by >= 2
raters only: Krippendorff's alpha (ordinal by default; Krippendorff 2011, "Computing Krippendorff's
Alpha-Reliability") and the exact-agreement share (of all pairs of ratings of one item, the share
that are equal). Rows are grouped by `source` before anything else, so human ratings and a judge
LLM's are never pooled.
No Ray, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from valuecsv_ray.cvalues.human import RatingError
from valuecsv_ray.resampling import N_BOOT, bootstrap_mean_ci
from valuecsv_ray.text_table import frame_table

LEVELS = ("nominal", "ordinal", "interval")
ALL = "(all)"  # the model / domain of a row that pools them
NO_OVERLAP = "agreement: no item rated twice"
SUMMARY_COLUMNS = ("source", "scope", "model", "domain", "n_ratings", "n_unrated", "n_items", "n_raters",
                   "mean", "ci_low", "ci_high", "n_items_multi", "alpha", "exact_agreement", "agreement")


def _delta(values: np.ndarray, n_c: np.ndarray, level: str) -> np.ndarray:
    """Squared distances between the distinct values, for Krippendorff's metric `level`."""
    if level == "nominal":
        return (values[:, None] != values[None, :]).astype(float)
    if level == "interval":
        return (values[:, None] - values[None, :]) ** 2
    if level == "ordinal":  # (sum of n_g for g from c to k, minus half of n_c and n_k) squared
        cum, idx = np.cumsum(n_c), np.arange(len(n_c))
        lo, hi = np.minimum.outer(idx, idx), np.maximum.outer(idx, idx)
        return (cum[hi] - cum[lo] + n_c[lo] - (n_c[lo] + n_c[hi]) / 2) ** 2
    raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


def _pairable(units: Iterable[Sequence[float]]) -> list[np.ndarray]:
    """Each unit's values without its NaNs (not rated, as a blank rating in the rating table); the
    units left with fewer than two values pair with nothing and are dropped."""
    arrays = (np.asarray(u, dtype=float) for u in units)
    rated = (a[~np.isnan(a)] for a in arrays)
    return [a for a in rated if len(a) >= 2]


def krippendorff_alpha(units: Iterable[Sequence[float]], level: str = "ordinal") -> float:
    """Krippendorff's alpha over `units`, each the values its raters gave (missing ones left out or NaN).

    Units with fewer than two values are not pairable and are ignored. NaN when fewer than two
    units' worth of values pair up or all pairable values are equal (alpha is then undefined). Equal
    to the `krippendorff` package's alpha (tests/cvalues/test_agreement.py), a test dependency only:
    it is GPL-3.0."""
    pairable = _pairable(units)
    if not pairable:
        return float("nan")
    values = np.unique(np.concatenate(pairable))
    o = np.zeros((len(values), len(values)))  # the coincidence matrix
    for unit in pairable:
        counts = np.bincount(np.searchsorted(values, unit), minlength=len(values)).astype(float)
        o += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    n_c = o.sum(axis=1)
    delta = _delta(values, n_c, level)
    expected = (np.outer(n_c, n_c) * delta).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - (n_c.sum() - 1) * (o * delta).sum() / expected)


def exact_agreement(units: Iterable[Sequence[float]]) -> float:
    """Of all pairs of values within a unit (units with >= 2 values, NaN not counted), the share that
    are equal."""
    pairs = agree = 0
    for unit in _pairable(units):
        _, counts = np.unique(unit, return_counts=True)
        pairs += len(unit) * (len(unit) - 1) // 2
        agree += int((counts * (counts - 1) // 2).sum())
    return agree / pairs if pairs else float("nan")


def _agreement_text(n_multi: int, alpha: float, exact: float, level: str) -> str:
    if n_multi == 0:
        return NO_OVERLAP
    alpha_text = "alpha undefined (no variation)" if np.isnan(alpha) else f"alpha {alpha:.3f} ({level})"
    return f"{alpha_text}, exact {exact:.0%}, {n_multi} item(s) rated twice or more"


def _summary_row(group: pd.DataFrame, keys: dict[str, str], level: str, n_boot: int, seed: int) -> dict:
    """One SUMMARY_COLUMNS row over the ratings in `group`."""
    rated = group[group["rating"].notna()]
    by_item = rated.groupby("item")["rating"]
    item_means = by_item.mean().to_numpy()
    units = [u for u in by_item.apply(list) if len(u) >= 2]
    alpha, exact = krippendorff_alpha(units, level), exact_agreement(units)
    low, high = bootstrap_mean_ci(item_means, n_boot, seed)
    mean = float(item_means.mean()) if len(item_means) else float("nan")
    return {**keys, "n_ratings": len(rated), "n_unrated": len(group) - len(rated), "n_items": len(item_means),
            "n_raters": rated["rater"].nunique(), "mean": mean, "ci_low": low, "ci_high": high,
            "n_items_multi": len(units), "alpha": alpha,
            "exact_agreement": exact, "agreement": _agreement_text(len(units), alpha, exact, level)}


def aggregate_ratings(ratings: pd.DataFrame, level: str = "ordinal", n_boot: int = N_BOOT,
                      seed: int = 0) -> pd.DataFrame:
    """SUMMARY_COLUMNS rows per source: all models pooled (scope "all", for agreement), per model
    (scope "model") and per (model, domain_zh) (scope "model_domain")."""
    missing = {"item", "source", "rater", "rating", "model", "domain_zh"} - set(ratings.columns)
    if missing:
        raise RatingError(f"the rating table lacks column(s) {sorted(missing)}; make it with `rating import`")
    if level not in LEVELS:
        raise RatingError(f"level must be one of {LEVELS}, got {level!r}")
    rows: list[dict[str, Any]] = []

    def add(group: pd.DataFrame, source: str, scope: str, model: str, domain: str) -> None:
        keys = {"source": source, "scope": scope, "model": model, "domain": domain}
        rows.append(_summary_row(group, keys, level, n_boot, seed))

    for source, by_source in ratings.groupby("source", sort=True):
        add(by_source, source, "all", ALL, ALL)
        for model, by_model in by_source.groupby("model", sort=True):
            add(by_model, source, "model", model, ALL)
            for domain, cell in by_model.groupby("domain_zh", sort=True):
                add(cell, source, "model_domain", model, domain)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def format_summary(summary: pd.DataFrame) -> str:
    """A plain-text table per source: mean [95% CI], counts and agreement per model and domain."""
    blocks = []
    for source, rows in summary.groupby("source", sort=True):
        table = rows.assign(mean_ci=[f"{m:.2f} [{lo:.2f}, {hi:.2f}]" if not np.isnan(lo) else
                                     (f"{m:.2f}" if not np.isnan(m) else "-")
                                     for m, lo, hi in zip(rows["mean"], rows["ci_low"], rows["ci_high"],
                                                          strict=True)])
        table = table[["model", "domain", "n_items", "n_ratings", "n_unrated", "mean_ci", "agreement"]]
        blocks.append(f"source: {source}  (mean rating per answer, 95% bootstrap CI over answers)\n"
                      + frame_table(table))
    return "\n\n".join(blocks) if blocks else "no ratings"
