"""The report's Leaderboard section: one ranked table per profile, a bump chart of ranks, and the
profile-similarity table (Spearman's rho, models x profiles) where the leaderboard has one.

    blocks, files = leaderboard_section(Path("eval/run1/leaderboard"), out_dir, taxonomy)

`valuecsv_ray.eval.report.write_eval_report` passes it to `valuecsv_ray.audit.report.write_report`
as a section when a leaderboard is given or found beside the audit (eval.layout.find_leaderboard);
ranks.png shows how each model's rank moves between profiles.
No torch, no Ray.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from valuecsv_ray.audit.stats import StatsError
from valuecsv_ray.leaderboard.board import load_leaderboard
from valuecsv_ray.leaderboard.profiles import SHIPPED, LeaderboardError
from valuecsv_ray.leaderboard.similarity import load_similarity, similarity_cells
from valuecsv_ray.report_kit import BASE_FONT, Block, cjk_family, drawable, figure
from valuecsv_ray.taxonomy import Taxonomy

RANKS_FILE = "ranks.png"


def _families(texts: list[str]) -> tuple[str, ...]:
    """Font families that draw `texts` (model and profile names), a CJK one first where needed."""
    needed = "".join(sorted({ch for text in texts for ch in text if ord(ch) > 0x2FF}))
    cjk = cjk_family(needed) if needed else None
    return (cjk, BASE_FONT) if cjk else (BASE_FONT,)


def plot_ranks(board: pd.DataFrame, path: Path) -> None:
    """Bump chart: profiles left to right, rank top (1) to bottom, one line per model."""
    from matplotlib import rc_context

    profiles = list(dict.fromkeys(board["profile"]))
    ranks = board.pivot(index="model", columns="profile", values="rank").reindex(columns=profiles)
    families = _families([*map(str, ranks.index), *profiles])
    n_models = len(ranks)
    with rc_context({"font.family": list(families)}):
        fig = figure((max(5.0, 1.6 * len(profiles) + 3.5), max(3.0, 0.45 * n_models + 1.8)))
        ax = fig.add_subplot()
        x = np.arange(len(profiles))
        for model, row in ranks.iterrows():
            y = row.to_numpy(dtype=float)
            line = ax.plot(x, y, marker="o", linewidth=2)[0]
            ax.annotate(drawable(str(model), families), (x[-1], y[-1]), xytext=(8, 0),
                        textcoords="offset points", va="center", fontsize=8, color=line.get_color())
        ax.set_xticks(x, [drawable(p, families) for p in profiles])
        ax.set_yticks(range(1, n_models + 1))
        ax.set_ylim(n_models + 0.5, 0.5)  # rank 1 at the top
        ax.set_xlim(-0.3, len(profiles) - 1 + max(0.8, 0.3 * len(profiles)))
        ax.set_xlabel("weight profile")
        ax.set_ylabel("rank (1 = highest score)")
        ax.set_title("Rank of each model per weight profile")
        fig.savefig(path, dpi=110)


def _weights_prose(profile: dict, taxonomy: Taxonomy) -> str:
    weights = profile["weights"]
    listed = ", ".join(f"{label.en} {weights.get(label.id, 0):g}" for label in taxonomy.labels)
    about = f"{profile['description'].rstrip('.')}. " if profile.get("description") else ""
    source = profile.get("source", "preset")
    where = source if source == "preset" or source.startswith(SHIPPED) else f"file {source}"
    return f"{about}Weights: {listed} ({where})."


def leaderboard_section(folder: Path, out_dir: Path,
                        taxonomy: Taxonomy) -> tuple[list[Block], dict[str, Path]]:
    """The Leaderboard blocks of the report and ranks.png (written into `out_dir`); raises StatsError
    for a leaderboard that cannot be read or was made with another taxonomy."""
    try:
        board, meta = load_leaderboard(folder)
    except (LeaderboardError, OSError, ValueError) as e:
        raise StatsError(f"leaderboard {folder}: {e}") from e
    if meta.get("taxonomy") != taxonomy.name:
        raise StatsError(f"leaderboard {folder} was made for taxonomy {meta.get('taxonomy')!r}, the stats "
                         f"for {taxonomy.name!r}; run `valuecsv-ray leaderboard` again")
    path = Path(out_dir) / RANKS_FILE
    plot_ranks(board, path)
    n = int(board["n_prompts"].iloc[0]) if len(board) else 0
    blocks: list[Block] = [
        ("h2", "Leaderboard"),
        ("p", f"Score = 100 · Σ w_d s_d / Σ w_d, where s_d is a model's mean over the {n} prompts every "
              "model answered of the prompt's mean P(value d). 95% interval: percentile bootstrap over "
              f"prompts ({meta.get('n_boot')} resamples, seed {meta.get('seed')}), the same resamples "
              "for every model."),
        ("img", RANKS_FILE, "rank of each model per weight profile"),
    ]
    profiles = {p["name"]: p for p in meta.get("profiles", [])}
    for name, part in board.groupby("profile", sort=False):
        rows = [[str(r.rank), r.model, f"{r.score:.2f} [{r.lo:.2f}, {r.hi:.2f}]"] for r in part.itertuples()]
        blocks.append(("h3", f"Profile {name}"))
        if name in profiles:
            blocks.append(("p", _weights_prose(profiles[name], taxonomy)))
        blocks.append(("table", ["rank", "model", "score [95% CI]"], rows))
    return blocks + _similarity_blocks(folder), {"ranks": path}


def _similarity_blocks(folder: Path) -> list[Block]:
    """Spearman's rho of each model with each profile (and reference), if the leaderboard has it."""
    table = load_similarity(folder)
    if table is None or table.empty:
        return []
    header, rows = similarity_cells(table)
    return [
        ("h3", "Profile similarity"),
        ("p", "Spearman's rank correlation of each model's per-value scores (its s_d) with each profile's "
              "weights (ties share their average rank; profiles that weigh every value alike are left "
              "out) and with each reference vector (ref): +1 when the model's values rank as the weights "
              "do, -1 when reversed."),
        ("table", header, rows),
    ]
