"""Statistics over the audit's per-row scores: per (model, value), (model, level) and model overall.

    from valuecsv_ray.audit.stats import stats_pass
    stats, coverage = stats_pass(Path("out/scores"), Path("out/stats"))

Per group: n texts, mean probability with a 95% normal-approximation CI (mean +- 1.96 std/sqrt(n)),
sample std, p10/p50/p90, the share of texts labelled positive and its 95% Wilson interval.
A level's score per text is the mean of its four probabilities and the text counts positive if any
of its four labels is; "overall" does the same over all twelve values.

By default LLMs are compared on the same questions: when there are several models and every row
has a prompt, only prompts answered by every model are kept. `coverage` (coverage.json) records
rows and prompts per model and whether and why the comparison was restricted.
No torch, no Ray: plain pandas, pyarrow and numpy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from valuecsv_ray.audit.schema import LABEL_COLUMNS, PROB_COLUMNS, STATS_SCHEMA
from valuecsv_ray.taxonomy import VALUES, Level

Z95 = 1.96  # two-sided 95% normal quantile, for the CI of the mean and the Wilson interval
SCOPES: tuple[str, ...] = ("value", "level", "overall")  # STATS_SCHEMA.scope, in row order
OVERALL_KEY = "all"  # STATS_SCHEMA.key of the "overall" scope
REQUIRED_COLUMNS: tuple[str, ...] = ("model", *PROB_COLUMNS, *LABEL_COLUMNS)
STATS_FILES = ("stats.parquet", "stats.csv", "coverage.json")

# column positions (in VALUES order) of each level's four values
_LEVEL_POSITIONS: dict[Level, list[int]] = {
    level: [i for i, v in enumerate(VALUES) if v.level is level] for level in Level
}


class StatsError(ValueError):
    """The scores or stats given cannot be summarised or loaded; the message says where and why."""


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (stays inside [0, 1], sane at 0 and n)."""
    if n <= 0:
        raise StatsError(f"Wilson interval needs n > 0, got n={n}")
    rate = successes / n
    denom = 1.0 + z * z / n
    centre = (rate + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(rate * (1.0 - rate) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _summarise(model: str, scope: str, key: str, p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One STATS_SCHEMA row from a group's per-text probabilities `p` and labels `y`."""
    n = len(p)
    mean = float(p.mean())
    std = float(p.std(ddof=1)) if n > 1 else 0.0
    half = Z95 * std / math.sqrt(n)
    p10, p50, p90 = (float(q) for q in np.percentile(p, [10, 50, 90]))
    pos_lo, pos_hi = wilson_interval(int(y.sum()), n)
    return {
        "model": model, "scope": scope, "key": key, "n": n,
        "mean": mean, "mean_lo": mean - half, "mean_hi": mean + half, "std": std,
        "p10": p10, "p50": p50, "p90": p90,
        "pos_rate": float(y.mean()), "pos_lo": pos_lo, "pos_hi": pos_hi,
    }


def _model_rows(model: str, group: pd.DataFrame) -> list[dict[str, Any]]:
    """The 12 value rows, 3 level rows and 1 overall row of one model, in that order."""
    p = group[list(PROB_COLUMNS)].to_numpy(dtype=np.float64)
    y = group[list(LABEL_COLUMNS)].to_numpy(dtype=bool)
    rows = [_summarise(model, "value", v.id, p[:, i], y[:, i]) for i, v in enumerate(VALUES)]
    rows += [
        _summarise(model, "level", level.value, p[:, pos].mean(axis=1), y[:, pos].any(axis=1))
        for level, pos in _LEVEL_POSITIONS.items()
    ]
    rows.append(_summarise(model, "overall", OVERALL_KEY, p.mean(axis=1), y.any(axis=1)))
    return rows


def _check_scores(scores: pd.DataFrame) -> None:
    """Refuse input without the needed columns, without rows, or with nulls in them."""
    where = scores.attrs.get("source", "the scores DataFrame")
    missing = [c for c in REQUIRED_COLUMNS if c not in scores.columns]
    if missing:
        raise StatsError(
            f"{where}: missing column(s) {', '.join(missing)}; expected the audit's scores table "
            "(valuecsv_ray.audit.schema.SCORE_SCHEMA)"
        )
    if scores.empty:
        raise StatsError(f"{where}: no rows to summarise; did the audit score anything (see quarantine/)?")
    nulls = {c: int(n) for c, n in scores[list(REQUIRED_COLUMNS)].isna().sum().items() if n}
    if nulls:
        listed = ", ".join(f"{c} ({n} rows)" for c, n in nulls.items())
        raise StatsError(f"{where}: null values in {listed}; SCORE_SCHEMA does not allow nulls there")


def _no_restriction_reason(scores: pd.DataFrame, common_prompts: bool, n_models: int) -> str | None:
    """Why the comparison cannot or should not be restricted to common prompts (None: restrict)."""
    if not common_prompts:
        return "restriction to common prompts was turned off (common_prompts=False)"
    if n_models < 2:
        return "there is only one model"
    if "prompt" not in scores.columns:
        return "the scores have no prompt column"
    n_null = int(scores["prompt"].isna().sum())
    if n_null:
        return f"{n_null} of {len(scores)} rows have no prompt"
    return None


def _common_prompts(scores: pd.DataFrame) -> set | None:
    """Prompts answered (at least one row) by every model; None when any row lacks a prompt."""
    if "prompt" not in scores.columns or scores["prompt"].isna().any():
        return None
    return set.intersection(*(set(g) for _, g in scores.groupby("model")["prompt"]))


def _distinct_prompts(scores: pd.DataFrame) -> int | None:
    """Distinct non-null prompts; None without a prompt column."""
    return int(scores["prompt"].nunique(dropna=True)) if "prompt" in scores.columns else None


def _coverage(
    scores: pd.DataFrame, used: pd.DataFrame, common: set | None, restricted: bool, reason: str
) -> dict[str, Any]:
    """The coverage record: rows and prompts per model and overall, and the restriction applied."""
    by_model, by_model_used = dict(list(scores.groupby("model"))), dict(list(used.groupby("model")))
    return {
        "models": {
            m: {
                "rows": len(rows),
                "prompts": _distinct_prompts(rows),
                "rows_used": len(by_model_used.get(m, ())),
            }
            for m, rows in sorted(by_model.items())
        },
        "rows": len(scores),
        "rows_used": len(used),
        "prompts": _distinct_prompts(scores),
        "common_prompts": len(common) if common is not None else None,
        "restricted": restricted,
        "reason": reason,
    }


def restrict_to_common_prompts(
    scores: pd.DataFrame, common_prompts: bool = True
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Keep only prompts answered by every model (see module docstring); return rows and coverage."""
    models = sorted(scores["model"].unique())
    common = _common_prompts(scores)
    reason = _no_restriction_reason(scores, common_prompts, len(models))
    restricted = reason is None
    used = scores
    if restricted:
        if not common:
            raise StatsError(
                f"{scores.attrs.get('source', 'scores')}: no prompt was answered by every model "
                f"({', '.join(models)}); compare all rows instead (common_prompts=False)"
            )
        used = scores[scores["prompt"].isin(common)]
        reason = f"models are compared on the {len(common)} prompts that every model answered"
    coverage = _coverage(scores, used, common, restricted, reason)
    return used, coverage


def compute_stats(scores: pd.DataFrame, common_prompts: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """STATS_SCHEMA rows (model sorted; value, level, overall; values.py order) and the coverage."""
    _check_scores(scores)
    scores = scores.assign(model=scores["model"].astype(str))
    used, coverage = restrict_to_common_prompts(scores, common_prompts)
    rows = [row for model, group in used.groupby("model", sort=True) for row in _model_rows(model, group)]
    stats = pd.DataFrame(rows, columns=STATS_SCHEMA.names)
    return stats.astype({"n": "int64"}), coverage


def read_scores(scores_dir: Path) -> pd.DataFrame:
    """The columns the stats need (and `prompt` where present) from a folder of score Parquet files."""
    scores_dir = Path(scores_dir)
    if not scores_dir.is_dir():
        raise StatsError(f"{scores_dir}: not a folder; pass the audit's OUT/scores/ folder")
    dataset = ds.dataset(scores_dir, format="parquet")
    if not dataset.files:
        raise StatsError(f"{scores_dir}: no Parquet files; run the audit first (it writes OUT/scores/)")
    names = dataset.schema.names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise StatsError(
            f"{scores_dir}: missing column(s) {', '.join(missing)}; expected SCORE_SCHEMA "
            "(valuecsv_ray.audit.schema) as written by the audit"
        )
    columns = [c for c in ("model", "prompt") if c in names] + list(PROB_COLUMNS) + list(LABEL_COLUMNS)
    scores = dataset.to_table(columns=columns).to_pandas()
    scores.attrs["source"] = str(scores_dir)
    return scores


def write_stats(stats: pd.DataFrame, coverage: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write stats.parquet (exactly STATS_SCHEMA), stats.csv and coverage.json into `out_dir`."""
    if list(stats.columns) != STATS_SCHEMA.names:
        raise StatsError(f"stats columns {list(stats.columns)} differ from STATS_SCHEMA {STATS_SCHEMA.names}")
    nulls = [c for c in stats.columns if stats[c].isna().any()]
    if nulls:
        raise StatsError(f"stats have nulls in {', '.join(nulls)}; STATS_SCHEMA allows none")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name.split(".")[1]: out_dir / name for name in STATS_FILES}
    table = pa.Table.from_pandas(stats, schema=STATS_SCHEMA, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(None), paths["parquet"])
    stats.to_csv(paths["csv"], index=False)
    paths["json"].write_text(json.dumps(coverage, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return paths


def load_stats(out_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read back what write_stats wrote: the stats table and the coverage dict."""
    out_dir = Path(out_dir)
    missing = [name for name in ("stats.parquet", "coverage.json") if not (out_dir / name).is_file()]
    if missing:
        raise StatsError(
            f"{out_dir}: missing {', '.join(missing)}; run the stats pass on the audit's scores/ "
            "first (valuecsv_ray.audit.stats.stats_pass)"
        )
    stats = pq.read_table(out_dir / "stats.parquet").to_pandas()
    absent = [c for c in STATS_SCHEMA.names if c not in stats.columns]
    if absent:
        raise StatsError(f"{out_dir / 'stats.parquet'}: missing column(s) {', '.join(absent)}")
    coverage = json.loads((out_dir / "coverage.json").read_text(encoding="utf-8"))
    return stats[STATS_SCHEMA.names], coverage


def stats_pass(scores_dir: Path, out_dir: Path, common_prompts: bool = True) -> tuple[pd.DataFrame, dict]:
    """Read OUT/scores/, compute the statistics and write them to `out_dir`: the CLI's one call."""
    stats, coverage = compute_stats(read_scores(scores_dir), common_prompts=common_prompts)
    write_stats(stats, coverage, out_dir)
    return stats, coverage
