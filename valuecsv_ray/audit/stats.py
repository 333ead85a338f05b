"""Statistics over the audit's per-row scores: per (model, value), (model, group) and model overall.

    from valuecsv_ray.audit.stats import stats_pass
    stats, coverage = stats_pass(Path("out/scores"), Path("out/stats"), registry.taxonomy)

The values and their groups (for the default taxonomy: levels) come from the registry's taxonomy.
Per group: n texts and every statistic of `audit.statistics` (mean probability with its 95% CI,
sample std, p10/p50/p90, the share labelled positive with its 95% Wilson interval).
A group's score per text is the mean of its values' probabilities and the text counts positive if
any of its values' labels is; "overall" does the same over all the taxonomy's values.

By default LLMs are compared on the same questions: when there are several models and every row
has a prompt, only prompts answered by every model are kept. `coverage` (coverage.json) records
rows and prompts per model and whether and why the comparison was restricted.
No torch, no Ray: plain pandas, pyarrow and numpy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from valuecsv_ray.audit.schema import STATS_SCHEMA, label_columns, prob_columns
from valuecsv_ray.audit.statistics import compute
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.storage import (
    exists,
    is_file,
    join,
    located,
    parquet_files,
    read_json,
    resolve,
    write_json,
    write_table,
    write_text,
)
from valuecsv_ray.taxonomy import Taxonomy, TaxonomyError

SCOPES: tuple[str, ...] = ("value", "group", "overall")  # STATS_SCHEMA.scope, in row order
OVERALL_KEY = "all"  # STATS_SCHEMA.key of the "overall" scope
# write_stats' keys and file names
STATS_FILES = {"parquet": "stats.parquet", "csv": "stats.csv", "coverage": "coverage.json",
               "taxonomy": "taxonomy.json"}


class StatsError(ValuecsvError, ValueError):
    """The scores or stats given cannot be summarised or loaded; the message says where and why."""


def _summarise(model: str, scope: str, key: str, p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One STATS_SCHEMA row from per-text probabilities `p` and labels `y` (of a value, a group, all)."""
    return {"model": model, "scope": scope, "key": key, "n": len(p), **compute(p, y)}


def _model_rows(model: str, scores: pd.DataFrame, taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """One model's stats: a row per value, one per group of the taxonomy and one overall, in that order."""
    p = scores[list(prob_columns(taxonomy))].to_numpy(dtype=np.float64)
    y = scores[list(label_columns(taxonomy))].to_numpy(dtype=bool)
    rows = [_summarise(model, "value", v, p[:, i], y[:, i]) for i, v in enumerate(taxonomy.ids)]
    rows += [
        _summarise(model, "group", name, p[:, pos].mean(axis=1), y[:, pos].any(axis=1))
        for name, pos in taxonomy.group_positions().items()
    ]
    rows.append(_summarise(model, "overall", OVERALL_KEY, p.mean(axis=1), y.any(axis=1)))
    return rows


def required_columns(taxonomy: Taxonomy) -> tuple[str, ...]:
    """The scores columns the statistics need (`prompt` is used where present)."""
    return ("model", *prob_columns(taxonomy), *label_columns(taxonomy))


def _check_scores(scores: pd.DataFrame, taxonomy: Taxonomy) -> None:
    """Refuse input without the needed columns, without rows, or with nulls in them."""
    where = scores.attrs.get("source", "the scores DataFrame")
    required = list(required_columns(taxonomy))
    missing = [c for c in required if c not in scores.columns]
    if missing:
        raise StatsError(
            f"{where}: missing column(s) {', '.join(missing)}; expected the audit's scores table "
            f"(valuecsv_ray.audit.schema.score_schema) for taxonomy {taxonomy.name!r}"
        )
    if scores.empty:
        raise StatsError(f"{where}: no rows to summarise; did the audit score anything (see quarantine/)?")
    nulls = {c: int(n) for c, n in scores[required].isna().sum().items() if n}
    if nulls:
        listed = ", ".join(f"{c} ({n} rows)" for c, n in nulls.items())
        raise StatsError(f"{where}: null values in {listed}; the scores table does not allow nulls there")


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


def compute_stats(
    scores: pd.DataFrame, taxonomy: Taxonomy, common_prompts: bool = True
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """STATS_SCHEMA rows (models sorted; per model its values, groups and overall, in taxonomy
    order) and the coverage."""
    _check_scores(scores, taxonomy)
    scores = scores.assign(model=scores["model"].astype(str))
    used, coverage = restrict_to_common_prompts(scores, common_prompts)
    by_model = used.groupby("model", sort=True)
    rows = [row for model, part in by_model for row in _model_rows(model, part, taxonomy)]
    stats = pd.DataFrame(rows, columns=STATS_SCHEMA.names)
    return stats.astype({"n": "int64"}), coverage


def read_scores(scores_dir: str | Path, taxonomy: Taxonomy, columns: list[str] | None = None) -> pd.DataFrame:
    """The audit's scores table from a folder of score Parquet files (a path or a URI): `columns`, each
    required, or by default the columns the stats need (and `prompt` where present). The one reader of
    OUT/scores/: the stats pass and the leaderboard both read it here."""
    files = parquet_files(scores_dir)
    if not files and not exists(scores_dir):
        raise StatsError(f"{scores_dir}: not a folder; pass the audit's OUT/scores/ folder")
    dataset = ds.dataset([p for _, p in files], format="parquet", filesystem=files[0][0]) if files else None
    if dataset is None:
        raise StatsError(f"{scores_dir}: no Parquet files; run the audit first (it writes OUT/scores/)")
    names = dataset.schema.names
    missing = [c for c in columns or required_columns(taxonomy) if c not in names]
    if missing:
        raise StatsError(
            f"{scores_dir}: missing column(s) {', '.join(missing)}; expected the scores table "
            f"(valuecsv_ray.audit.schema.score_schema) of a registry with taxonomy {taxonomy.name!r}"
        )
    if columns is None:
        columns = [c for c in ("model", "prompt") if c in names] + list(required_columns(taxonomy)[1:])
    scores = dataset.to_table(columns=columns).to_pandas()
    scores.attrs["source"] = str(scores_dir)
    return scores


def _check_keys(stats: pd.DataFrame, taxonomy: Taxonomy, where: str) -> None:
    """Refuse stats whose value and group rows are not the taxonomy's."""
    for scope, expected in (("value", taxonomy.ids), ("group", taxonomy.groups)):
        found = tuple(dict.fromkeys(stats.loc[stats["scope"] == scope, "key"]))
        if found != tuple(expected):
            raise StatsError(f"{where}: the {scope} rows ({', '.join(found) or 'none'}) are not those of "
                             f"taxonomy {taxonomy.name!r} ({', '.join(expected)})")


def write_stats(stats: pd.DataFrame, coverage: dict[str, Any], taxonomy: Taxonomy,
                out_dir: str | Path) -> dict[str, Path | str]:
    """Write stats.parquet (exactly STATS_SCHEMA), stats.csv, coverage.json and taxonomy.json
    into `out_dir`; returns their paths (keys as in STATS_FILES)."""
    if list(stats.columns) != STATS_SCHEMA.names:
        raise StatsError(f"stats columns {list(stats.columns)} differ from STATS_SCHEMA {STATS_SCHEMA.names}")
    nulls = [c for c in stats.columns if stats[c].isna().any()]
    if nulls:
        raise StatsError(f"stats have nulls in {', '.join(nulls)}; STATS_SCHEMA allows none")
    _check_keys(stats, taxonomy, "stats to write")
    paths = {key: join(out_dir, name) for key, name in STATS_FILES.items()}
    table = pa.Table.from_pandas(stats, schema=STATS_SCHEMA, preserve_index=False)
    write_table(table.replace_schema_metadata(None), paths["parquet"])
    write_text(paths["csv"], stats.to_csv(index=False))
    write_json(paths["coverage"], coverage)
    write_json(paths["taxonomy"], taxonomy.to_dict())
    return {key: located(path) for key, path in paths.items()}


def read_taxonomy(path: str | Path) -> Taxonomy:
    """The taxonomy a stats pass recorded beside its stats (stats/taxonomy.json; a path or a URI)."""
    try:
        return Taxonomy.from_dict(read_json(path), where=str(path))
    except (OSError, json.JSONDecodeError, TaxonomyError) as e:
        raise StatsError(f"{path}: not a taxonomy ({e}); run the stats pass again") from e


def load_stats(out_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any], Taxonomy]:
    """Read back what write_stats wrote: the stats table, the coverage dict and the taxonomy."""
    needed = [STATS_FILES[k] for k in ("parquet", "coverage", "taxonomy")]  # stats.csv is for people
    missing = [name for name in needed if not is_file(join(out_dir, name))]
    if missing:
        raise StatsError(
            f"{out_dir}: missing {', '.join(missing)}; run the stats pass on the audit's scores/ "
            "first (valuecsv-ray audit, or valuecsv_ray.audit.stats.stats_pass)"
        )
    fs, parquet = resolve(join(out_dir, STATS_FILES["parquet"]))
    stats = pq.read_table(parquet, filesystem=fs).to_pandas()
    absent = [c for c in STATS_SCHEMA.names if c not in stats.columns]
    if absent:
        raise StatsError(f"{join(out_dir, 'stats.parquet')}: missing column(s) {', '.join(absent)}")
    coverage = read_json(join(out_dir, STATS_FILES["coverage"]))
    taxonomy = read_taxonomy(join(out_dir, STATS_FILES["taxonomy"]))
    _check_keys(stats, taxonomy, join(out_dir, "stats.parquet"))
    return stats[STATS_SCHEMA.names], coverage, taxonomy


def stats_pass(scores_dir: str | Path, out_dir: str | Path, taxonomy: Taxonomy,
               common_prompts: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read OUT/scores/, compute the statistics over `taxonomy`'s values and write them to `out_dir`."""
    stats, coverage = compute_stats(read_scores(scores_dir, taxonomy), taxonomy, common_prompts)
    write_stats(stats, coverage, taxonomy, out_dir)
    return stats, coverage

