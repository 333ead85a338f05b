"""A Value Compass style leaderboard: one 0-100 score per model and weight profile, with 95% intervals.

    scores, taxonomy, where = read_audit_scores("eval/run1/audit")  # an audit OUT or stats dir, or a URI
    board = leaderboard(scores, taxonomy, load_profiles(["uniform", "personal"], taxonomy))
    write_leaderboard(board, profiles, where.leaderboard_dir); print(format_leaderboard(board))

s_d (model m, value d) is the mean over prompts of the prompt's mean P(d) (several answers to one
prompt are averaged first), over ONLY the prompts that every compared model answered, so models
are ranked on the same questions. Score = 100 * sum_d w_d s_d / sum_d w_d. Its 95% interval is a
percentile bootstrap over prompts (valuecsv_ray.resampling): the common prompts are resampled with
replacement, the same resamples (seeded) for every model and profile. Rows without a prompt are
refused, not dropped: a leaderboard without shared prompts would compare answers to different questions.
No torch, no Ray: pandas, numpy and pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from valuecsv_ray.audit.outputs import SCORES, STATS
from valuecsv_ray.audit.schema import prob_columns
from valuecsv_ray.audit.stats import STATS_FILES, StatsError, read_scores, read_taxonomy
from valuecsv_ray.leaderboard.profiles import LeaderboardError, Profile
from valuecsv_ray.resampling import N_BOOT, bootstrap_means, percentile_interval
from valuecsv_ray.storage import (
    exists,
    is_file,
    is_uri,
    join,
    located,
    read_json,
    resolve,
    write_json,
    write_table,
    write_text,
)
from valuecsv_ray.taxonomy import Taxonomy
from valuecsv_ray.text_table import text_table

LEADERBOARD_SCHEMA = pa.schema([
    pa.field("profile", pa.string(), nullable=False),  # weight profile name (profiles.json has its weights)
    pa.field("rank", pa.int64(), nullable=False),  # 1 = best within the profile; ties share the best rank
    pa.field("model", pa.string(), nullable=False),  # LLM name
    pa.field("score", pa.float64(), nullable=False),  # 100 * sum_d w_d s_d / sum_d w_d, in [0, 100]
    pa.field("lo", pa.float64(), nullable=False),  # 95% percentile bootstrap interval over prompts
    pa.field("hi", pa.float64(), nullable=False),
    pa.field("n_prompts", pa.int64(), nullable=False),  # common prompts the score averages over
])
LEADERBOARD_DIR = "leaderboard"  # a leaderboard's folder beside the audit it ranks
LEADERBOARD_FILES = {"parquet": "leaderboard.parquet", "csv": "leaderboard.csv", "profiles": "profiles.json"}


@dataclass(frozen=True)
class PromptMeans:
    """Per-prompt mean probabilities of several models on the prompts all of them answered."""

    models: tuple[str, ...]
    prompts: tuple[str, ...]
    values: np.ndarray  # (models, prompts, taxonomy values): mean P(value) of the prompt's answers


def prompt_means(scores: pd.DataFrame, taxonomy: Taxonomy, models: list[str] | None = None) -> PromptMeans:
    """Average each (model, prompt)'s answers and keep the prompts every model (of `models`) answered."""
    where = scores.attrs.get("source", "the scores")
    columns = list(prob_columns(taxonomy))
    missing = [c for c in ("model", "prompt", *columns) if c not in scores.columns]
    if missing:
        raise LeaderboardError(f"{where}: missing column(s) {', '.join(missing)}; expected the audit's "
                               f"scores table for taxonomy {taxonomy.name!r} with a prompt column")
    frame = scores[["model", "prompt", *columns]].astype({"model": str})
    if models is not None:
        frame = frame[frame["model"].isin(models)]
    if frame.empty:
        raise LeaderboardError(f"{where}: no rows to rank")
    nulls = {c: int(n) for c, n in frame.isna().sum().items() if n}
    if nulls:
        raise LeaderboardError(
            f"{where}: null values in {', '.join(f'{c} ({n} rows)' for c, n in nulls.items())}; models are "
            "compared prompt by prompt, so every row needs its prompt and probabilities")
    means = frame.groupby(["model", "prompt"], sort=True)[columns].mean()
    names = tuple(sorted(means.index.unique("model")))
    per_model = [set(means.loc[m].index) for m in names]
    common = sorted(set.intersection(*per_model))
    if not common:
        raise LeaderboardError(f"{where}: no prompt was answered by every model ({', '.join(names)})")
    cube = np.stack([means.loc[m].loc[common].to_numpy(dtype=np.float64) for m in names])
    return PromptMeans(names, tuple(str(p) for p in common), cube)


def leaderboard(scores: pd.DataFrame, taxonomy: Taxonomy, profiles: list[Profile],
                n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """LEADERBOARD_SCHEMA rows: per profile (in the order given), models from best to worst."""
    if not profiles:
        raise LeaderboardError("no weight profile given; use e.g. 'uniform'")
    means = prompt_means(scores, taxonomy)
    weights = np.stack([p.vector(taxonomy) for p in profiles])
    weights = weights / weights.sum(axis=1, keepdims=True)
    per_prompt = 100.0 * np.einsum("mqv,fv->qfm", means.values, weights)  # (prompts, profiles, models)
    flat = per_prompt.reshape(len(means.prompts), -1)
    lo, hi = percentile_interval(bootstrap_means(flat, n_boot, seed))
    n_models = len(means.models)
    frame = pd.DataFrame({
        "profile": np.repeat([p.name for p in profiles], n_models),
        "model": list(means.models) * len(profiles),
        "score": flat.mean(axis=0), "lo": lo, "hi": hi,
    })
    frame["rank"] = frame.groupby("profile", sort=False)["score"].rank(method="min", ascending=False)
    frame["n_prompts"] = len(means.prompts)
    frame["order"] = np.repeat(np.arange(len(profiles)), n_models)
    frame = frame.sort_values(["order", "rank", "model"], kind="stable").reset_index(drop=True)
    board = frame[LEADERBOARD_SCHEMA.names].astype({"rank": "int64", "n_prompts": "int64"})
    board.attrs = {"taxonomy": taxonomy.name, "n_boot": n_boot, "seed": seed,
                   "profiles": [p.to_dict() for p in profiles]}
    return board


# --- reading and writing ---------------------------------------------------------------------


@dataclass(frozen=True)
class AuditPaths:
    """Where an audit's scores and taxonomy are: local Paths, or URIs (strings) on object storage."""

    root: Path | str  # the audit OUT folder
    scores_dir: Path | str  # OUT/scores
    taxonomy_file: Path | str  # OUT/stats/taxonomy.json (or that of the stats dir given)

    @property
    def leaderboard_dir(self) -> Path | str:
        """OUT/leaderboard: where a leaderboard of this audit goes unless told otherwise."""
        return located(join(self.root, LEADERBOARD_DIR))


def locate_audit(path: Path | str) -> AuditPaths:
    """Resolve an audit OUT dir or its stats dir (a path or a URI) to AuditPaths (its folder names)."""
    parent = str(path).rstrip("/").rsplit("/", 1)[0] if is_uri(path) else Path(path).parent
    taxonomy = STATS_FILES["taxonomy"]
    candidates = [(path, join(path, SCORES), join(path, STATS, taxonomy)),  # an audit OUT
                  (parent, join(parent, SCORES), join(path, taxonomy))]  # OUT/stats
    for root, scores_dir, taxonomy_file in candidates:
        if exists(scores_dir) and is_file(taxonomy_file):
            return AuditPaths(located(root), located(scores_dir), located(taxonomy_file))
    looked = "; ".join(f"{scores_dir}/ with {taxonomy_file}" for _, scores_dir, taxonomy_file in candidates)
    raise LeaderboardError(f"{path}: not an evaluation, audit or stats folder; looked for {looked}. "
                           "Run `valuecsv-ray audit` (it writes scores/ and stats/) first")


def read_audit_scores(path: Path | str) -> tuple[pd.DataFrame, Taxonomy, AuditPaths]:
    """The model, prompt and probability columns of an audit's scores, its taxonomy and its paths
    (read as the stats pass reads them: `audit.stats.read_scores`, `read_taxonomy`)."""
    where = locate_audit(path)
    try:
        taxonomy = read_taxonomy(where.taxonomy_file)
        scores = read_scores(where.scores_dir, taxonomy, ["model", "prompt", *prob_columns(taxonomy)])
    except StatsError as e:
        raise LeaderboardError(str(e)) from e
    return scores, taxonomy, where


def write_leaderboard(board: pd.DataFrame, out_dir: Path | str) -> dict[str, Path | str]:
    """Write leaderboard.parquet (LEADERBOARD_SCHEMA), leaderboard.csv and profiles.json (the weights,
    n_boot and seed from `board.attrs`) into `out_dir`, a folder or a URI, each file whole or not at all;
    returns their paths (keys as LEADERBOARD_FILES)."""
    if "profiles" not in board.attrs:
        raise LeaderboardError("the leaderboard has lost its profiles (board.attrs); write what "
                               "leaderboard() returned")
    paths = {key: join(out_dir, name) for key, name in LEADERBOARD_FILES.items()}
    table = pa.Table.from_pandas(board[LEADERBOARD_SCHEMA.names], schema=LEADERBOARD_SCHEMA,
                                 preserve_index=False)
    write_table(table.replace_schema_metadata(None), paths["parquet"])
    write_text(paths["csv"], board.to_csv(index=False))
    meta = {**board.attrs, "models": sorted(board["model"].unique()),
            "n_prompts": int(board["n_prompts"].iloc[0]) if len(board) else 0}
    write_json(paths["profiles"], meta)
    return {key: located(path) for key, path in paths.items()}


def load_leaderboard(folder: Path | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """What write_leaderboard wrote (a folder or a URI): the board and the profiles record (weights,
    n_boot, seed)."""
    missing = [n for k, n in LEADERBOARD_FILES.items() if k != "csv" and not is_file(join(folder, n))]
    if missing:
        raise LeaderboardError(f"{folder}: missing {', '.join(missing)}; run `valuecsv-ray leaderboard` "
                               "first")
    fs, parquet = resolve(join(folder, LEADERBOARD_FILES["parquet"]))
    board = pq.read_table(parquet, filesystem=fs).to_pandas()
    absent = [c for c in LEADERBOARD_SCHEMA.names if c not in board.columns]
    if absent:
        raise LeaderboardError(f"{join(folder, LEADERBOARD_FILES['parquet'])}: missing column(s) "
                               f"{', '.join(absent)}")
    meta = read_json(join(folder, LEADERBOARD_FILES["profiles"]))
    board.attrs = meta
    return board, meta


# --- text ------------------------------------------------------------------------------------


def format_leaderboard(board: pd.DataFrame) -> str:
    """One ranked table per profile: rank, model, score and its 95% interval."""
    blocks = []
    for name, part in board.groupby("profile", sort=False):
        rows = [[str(r.rank), str(r.model), f"{r.score:.2f}", f"[{r.lo:.2f}, {r.hi:.2f}]"]
                for r in part.itertuples()]
        title = f"profile {name} ({int(part['n_prompts'].iloc[0])} common prompts)"
        blocks.append(title + "\n" + text_table(["rank", "model", "score", "95% interval"], rows, {0, 2}))
    return "\n\n".join(blocks)
