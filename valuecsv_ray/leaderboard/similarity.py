"""Profile similarity (Value Compass's culture heatmap): how closely each model's ranking of the
values follows a weight profile's, or a reference vector's, as Spearman's rank correlation.

    table = similarity(scores, taxonomy, profiles, [load_reference(Path("ref.yaml"), taxonomy)])
    write_similarity(table, out_dir); print(format_similarity(table))

A model's value vector is the leaderboard's s_d: its mean P(value d) over the prompts every model
answered (board.prompt_means). rho correlates the ranks of s_d with the ranks of a profile's
weights (scipy.stats.spearmanr; tied weights share their average rank, as 0/1 group presets do).
A profile whose weights are all equal (uniform) ranks no value above another and is left out.
A reference file is YAML or JSON mapping every value id of the taxonomy to a number.
No torch, no Ray.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from valuecsv_ray.leaderboard.board import prompt_means
from valuecsv_ray.leaderboard.profiles import LeaderboardError, Profile
from valuecsv_ray.storage import is_file, join, located, resolve, write_table, write_text
from valuecsv_ray.taxonomy import Taxonomy
from valuecsv_ray.text_table import text_table

SIMILARITY_SCHEMA = pa.schema([
    pa.field("model", pa.string(), nullable=False),  # LLM name
    pa.field("against", pa.string(), nullable=False),  # the weight profile's or the reference's name
    pa.field("kind", pa.string(), nullable=False),  # "profile" (a weight profile) or "reference" (a file)
    pa.field("rho", pa.float64()),  # Spearman's rank correlation; null if a model's s_d are all equal
    pa.field("p_value", pa.float64()),  # two-sided p of rho = 0 (scipy's t approximation: rough)
    pa.field("n_values", pa.int64(), nullable=False),  # values correlated (the taxonomy's, in the registry)
    pa.field("n_prompts", pa.int64(), nullable=False),  # common prompts each s_d averages over
])
SIMILARITY_FILES = {"parquet": "similarity.parquet", "csv": "similarity.csv"}  # beside the leaderboard
PROFILE, REFERENCE = "profile", "reference"


@dataclass(frozen=True)
class Reference:
    """A value -> number vector to correlate models with (e.g. a culture's value ranking)."""

    name: str  # the file's name without suffix, shown as a column
    numbers: dict[str, float]  # value id -> number, every value of the taxonomy
    source: str  # the file it came from

    def vector(self, taxonomy: Taxonomy) -> np.ndarray:
        return np.array([self.numbers[v] for v in taxonomy.ids], dtype=np.float64)


def load_reference(path: Path, taxonomy: Taxonomy) -> Reference:
    """A reference vector from a YAML or JSON mapping of value id -> number; LeaderboardError naming
    the file and every missing, unknown or non-numeric key."""
    path = Path(path)
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML reads JSON too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise LeaderboardError(f"reference file {path}: cannot read it as YAML or JSON ({e})") from e
    if not isinstance(record, dict):
        raise LeaderboardError(f"{path}: expected a mapping of value id: number for the values "
                               f"{', '.join(taxonomy.ids)}")
    problems = [f"unknown value {k!r}; known values: {', '.join(taxonomy.ids)}" for k in record
                if k not in taxonomy.ids]
    problems += [f"value {v!r} is missing; give every value of taxonomy {taxonomy.name!r} a number"
                 for v in taxonomy.ids if v not in record]
    problems += [f"{k}: {x!r} is not a finite number" for k, x in record.items() if k in taxonomy.ids
                 and (isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x))]
    if not problems and len({record[v] for v in taxonomy.ids}) == 1:
        problems.append("every value has the same number; a reference must rank the values")
    if problems:
        raise LeaderboardError(f"{path}: invalid reference vector:\n  " + "\n  ".join(problems))
    return Reference(path.stem, {v: float(record[v]) for v in taxonomy.ids}, str(path))


def similarity(scores: pd.DataFrame, taxonomy: Taxonomy, profiles: list[Profile],
               references: list[Reference] | tuple[Reference, ...] = ()) -> pd.DataFrame:
    """SIMILARITY_SCHEMA rows: per profile that ranks the values, then per reference (in the order
    given), every model (in name order)."""
    means = prompt_means(scores, taxonomy)
    vectors = means.values.mean(axis=1)  # (models, values): s_d
    targets = [(p.name, PROFILE, p.vector(taxonomy)) for p in profiles]
    targets = [t for t in targets if np.ptp(t[2]) > 0]
    targets += [(r.name, REFERENCE, r.vector(taxonomy)) for r in references]
    rows = []
    for name, kind, target in targets:
        for model, vector in zip(means.models, vectors, strict=True):
            rho, p_value = _spearman(vector, target)
            rows.append({"model": model, "against": name, "kind": kind, "rho": rho, "p_value": p_value,
                         "n_values": len(taxonomy.ids), "n_prompts": len(means.prompts)})
    table = pd.DataFrame(rows, columns=SIMILARITY_SCHEMA.names)
    return table.astype({"n_values": "int64", "n_prompts": "int64", "rho": "float64", "p_value": "float64"})


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(rho, p); NaN where either vector is constant (scipy warns and returns NaN there)."""
    from scipy.stats import spearmanr  # here: importing the leaderboard (and the report) stays fast

    if np.ptp(x) == 0 or np.ptp(y) == 0 or len(x) < 3:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def write_similarity(table: pd.DataFrame, out_dir: Path | str) -> dict[str, Path | str]:
    """similarity.parquet (SIMILARITY_SCHEMA) and similarity.csv into `out_dir` (a folder or a URI),
    each whole or not at all; their paths (keys as SIMILARITY_FILES)."""
    paths = {key: join(out_dir, name) for key, name in SIMILARITY_FILES.items()}
    arrow = pa.Table.from_pandas(table[SIMILARITY_SCHEMA.names], schema=SIMILARITY_SCHEMA,
                                 preserve_index=False)
    write_table(arrow.replace_schema_metadata(None), paths["parquet"])
    write_text(paths["csv"], table[SIMILARITY_SCHEMA.names].to_csv(index=False))
    return {key: located(path) for key, path in paths.items()}


def load_similarity(folder: Path | str) -> pd.DataFrame | None:
    """What write_similarity wrote into `folder` (a folder or a URI), or None where it wrote nothing."""
    path = join(folder, SIMILARITY_FILES["parquet"])
    if not is_file(path):
        return None
    fs, where = resolve(path)
    return pq.read_table(where, filesystem=fs).to_pandas()


def similarity_cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """rho as text, models (rows) x profiles then references marked (ref) (columns): header, rows."""
    column = table["against"].where(table["kind"] == PROFILE, table["against"] + " (ref)")
    matrix = table.assign(column=column).pivot(index="model", columns="column", values="rho")
    matrix = matrix.reindex(columns=list(dict.fromkeys(column)))
    rows = [[str(model), *("—" if pd.isna(x) else f"{x:+.2f}" for x in row)]
            for model, row in matrix.iterrows()]
    return ["model", *map(str, matrix.columns)], rows


def format_similarity(table: pd.DataFrame) -> str:
    """Spearman's rho of each model (rows) with each profile and reference (columns)."""
    if table.empty:
        return ("profile similarity: none of the profiles ranks the values (each weighs them all alike) "
                "and no reference was given")
    header, rows = similarity_cells(table)
    n_prompts = int(table["n_prompts"].iloc[0])
    return (f"profile similarity: Spearman's rho of each model's per-value scores ({n_prompts} common "
            f"prompts) with the weights\n" + text_table(header, rows, set(range(1, len(header)))))
