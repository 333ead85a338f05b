"""Paired comparison of two models: where do they differ, value by value, beyond chance?

    table = compare(scores, taxonomy, "qwen-7b", "glm-4", n_boot=N_BOOT, seed=0)
    print(format_compare(table))

On the prompts both models answered (several answers to a prompt averaged first), `diff` is the
mean over prompts of P_a - P_b, per value, per group (a prompt's group score is the mean of its
values') and overall. The 95% interval is a paired percentile bootstrap over prompts (both models
keep their answers to a resampled prompt; valuecsv_ray.resampling). The two-sided p-value inverts
that bootstrap: p = 2 * min(share of resampled diffs <= 0, share >= 0), each share counted as
(1 + k) / (1 + n_boot), so p >= 2 / (n_boot + 1): with few resamples nothing can reach significance
after correction.
`p_holm` is Holm-corrected within each scope (the values form one family, the groups another; the
overall row is a single test) and `significant` means p_holm < ALPHA.
No torch, no Ray.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from valuecsv_ray.leaderboard.board import prompt_means
from valuecsv_ray.leaderboard.profiles import LeaderboardError
from valuecsv_ray.resampling import N_BOOT, bootstrap_p_values, paired_bootstrap_diffs, percentile_interval
from valuecsv_ray.taxonomy import Taxonomy
from valuecsv_ray.text_table import text_table

ALPHA = 0.05  # family-wise error rate for `significant`
COMPARE_COLUMNS = (
    "scope",  # "value", "group" or "overall"
    "key",  # value id, group name, or "all"
    "mean_a", "mean_b",  # mean over common prompts of the per-prompt mean probability
    "diff",  # mean_a - mean_b
    "lo", "hi",  # 95% paired percentile bootstrap interval of diff
    "p_value",  # two-sided bootstrap p-value of diff == 0
    "p_holm",  # Holm-corrected within the scope
    "significant",  # p_holm < ALPHA
    "n_prompts",  # prompts both models answered
)


def holm(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given), capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = (m - np.arange(m)) * p[order]  # the smallest p times m, the next times m - 1, ...
    adjusted = np.minimum(1.0, np.maximum.accumulate(stepped))  # keep the order monotone
    out = np.empty(m)
    out[order] = adjusted
    return out


def _check_models(scores: pd.DataFrame, model_a: str, model_b: str) -> None:
    present = sorted(scores["model"].astype(str).unique()) if "model" in scores.columns else []
    unknown = [m for m in (model_a, model_b) if m not in present]
    if unknown:
        raise LeaderboardError(f"unknown model(s) {', '.join(map(repr, unknown))}; the scores hold: "
                               f"{', '.join(present) or 'no models'}")
    if model_a == model_b:
        raise LeaderboardError(f"compare needs two different models, got {model_a!r} twice")


def _per_prompt(means: np.ndarray, taxonomy: Taxonomy) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """(prompts, k) columns per value, group and overall from (prompts, values), with their (scope, key)."""
    positions = taxonomy.group_positions()
    columns = [means, *(means[:, pos].mean(axis=1, keepdims=True) for pos in positions.values()),
               means.mean(axis=1, keepdims=True)]
    keys = ([("value", v) for v in taxonomy.ids] + [("group", g) for g in positions]
            + [("overall", "all")])
    return np.hstack(columns), keys


def compare(scores: pd.DataFrame, taxonomy: Taxonomy, model_a: str, model_b: str,
            n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """COMPARE_COLUMNS rows: per value (taxonomy order), per group, then overall; diff = a - b."""
    _check_models(scores, model_a, model_b)
    means = prompt_means(scores, taxonomy, models=[model_a, model_b])
    a, keys = _per_prompt(means.values[means.models.index(model_a)], taxonomy)
    b, _ = _per_prompt(means.values[means.models.index(model_b)], taxonomy)
    boot = paired_bootstrap_diffs(a, b, n_boot, seed)
    lo, hi = percentile_interval(boot)
    table = pd.DataFrame(keys, columns=["scope", "key"]).assign(
        mean_a=a.mean(axis=0), mean_b=b.mean(axis=0), diff=(a - b).mean(axis=0), lo=lo, hi=hi,
        p_value=bootstrap_p_values(boot))
    table["p_holm"] = table.groupby("scope", sort=False)["p_value"].transform(holm)
    table["significant"] = table["p_holm"] < ALPHA
    table["n_prompts"] = len(means.prompts)
    table.attrs = {"model_a": model_a, "model_b": model_b, "n_boot": n_boot, "seed": seed}
    return table[list(COMPARE_COLUMNS)]


def format_compare(table: pd.DataFrame) -> str:
    """The comparison as a plain-text table, with a title naming the models."""
    a, b = table.attrs.get("model_a", "a"), table.attrs.get("model_b", "b")
    rows = [[r.scope, r.key, f"{r.mean_a:.3f}", f"{r.mean_b:.3f}", f"{r.diff:+.3f}",
             f"[{r.lo:+.3f}, {r.hi:+.3f}]", f"{r.p_value:.4f}", f"{r.p_holm:.4f}",
             "*" if r.significant else ""] for r in table.itertuples()]
    header = ["scope", "key", "a", "b", "a - b", "95% interval", "p", "p (Holm)", f"p<{ALPHA}"]
    n = int(table["n_prompts"].iloc[0]) if len(table) else 0
    title = f"a = {a}, b = {b}: paired over {n} common prompts; * = significant after Holm"
    return title + "\n" + text_table(header, rows, {2, 3, 4, 6, 7})
