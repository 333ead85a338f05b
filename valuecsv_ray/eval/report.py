"""The evaluation's report: the audit report of a stats folder joined with the leaderboard's section.

    paths = write_eval_report("eval/run1/audit/stats", "eval/run1/report")   # also `valuecsv-ray report`

No torch, no Ray: `valuecsv-ray report` imports only this.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from valuecsv_ray.audit.report import write_report
from valuecsv_ray.eval.layout import find_leaderboard
from valuecsv_ray.leaderboard.report import leaderboard_section
from valuecsv_ray.storage import is_uri


def write_eval_report(stats_dir: str | Path, out_dir: str | Path | None = None,
                      leaderboard_dir: Path | None = None) -> dict[str, Path | str]:
    """The audit report of `stats_dir` (write_report) with the Leaderboard section and ranks.png of
    `leaderboard_dir`, else of one found beside a local audit; without one, the audit report alone."""
    if leaderboard_dir is None and not is_uri(stats_dir):
        leaderboard_dir = find_leaderboard(Path(stats_dir))
    sections = [] if leaderboard_dir is None else [partial(leaderboard_section, Path(leaderboard_dir))]
    return write_report(stats_dir, out_dir, sections)
