"""Leaderboard and paired comparison of the LLMs in an audit, under weight profiles over the values.

    from valuecsv_ray.leaderboard import leaderboard, load_profiles, read_audit_scores
    scores, taxonomy, where = read_audit_scores(Path("eval/run1"))
    board = leaderboard(scores, taxonomy, load_profiles(["uniform"], taxonomy))

profiles: weight profiles (YAML files and presets from the taxonomy's groups); board: scores,
ranks and bootstrap intervals per profile, reading and writing; compare: per-value paired
differences of two models with Holm-corrected bootstrap p-values; report: the report's section.
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

__all__ = ["LEADERBOARD_SCHEMA", "LeaderboardError", "Profile", "compare", "format_compare",
           "format_leaderboard", "holm", "leaderboard", "load_leaderboard", "load_profile", "load_profiles",
           "presets", "read_audit_scores", "write_leaderboard"]
