"""Leaderboard and paired comparison of the LLMs in an audit, under weight profiles over the values.

    from valuecsv_ray.leaderboard import leaderboard, load_profiles, read_audit_scores
    scores, taxonomy, where = read_audit_scores(Path("eval/run1"))
    board = leaderboard(scores, taxonomy, load_profiles(["uniform"], taxonomy))

profiles: weight profiles (YAML files and presets from the taxonomy's groups); board: scores,
ranks and bootstrap intervals per profile, reading and writing; compare: per-value paired
differences of two models with Holm-corrected bootstrap p-values; similarity: Spearman's rho of
each model's per-value scores with each profile or a reference vector; report: the report's section.
No torch, no Ray.
"""

from valuecsv_ray.leaderboard.board import (
    LEADERBOARD_SCHEMA,
    format_leaderboard,
    leaderboard,
    load_leaderboard,
    read_audit_scores,
    write_leaderboard,
)
from valuecsv_ray.leaderboard.compare import compare, format_compare, holm
from valuecsv_ray.leaderboard.profiles import LeaderboardError, Profile, load_profile, load_profiles, presets
from valuecsv_ray.leaderboard.similarity import (
    SIMILARITY_SCHEMA,
    format_similarity,
    load_reference,
    similarity,
    write_similarity,
)

__all__ = ["LEADERBOARD_SCHEMA", "SIMILARITY_SCHEMA", "LeaderboardError", "Profile", "compare",
           "format_compare", "format_leaderboard", "format_similarity", "holm", "leaderboard",
           "load_leaderboard", "load_profile", "load_profiles", "load_reference", "presets",
           "read_audit_scores", "similarity", "write_leaderboard", "write_similarity"]
