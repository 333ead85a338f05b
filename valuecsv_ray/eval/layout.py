"""The folders of an evaluation (`valuecsv-ray eval --out EVAL`), one per step, and how the
leaderboard and report commands find the audit and the leaderboard inside one.

    layout = EvalLayout("eval/run1")
    layout.audit                          # "eval/run1/audit"
    audit_source(Path("eval/run1"))       # eval/run1/audit (any other folder comes back as given)

EVAL/
    collect/       the answers (valuecsv_ray.collect.pipeline): responses/, prompts.parquet, summary.json
    audit/         their value scores and statistics (valuecsv_ray.audit.pipeline): scores/,
                   quarantine/, stats/
    leaderboard/   one ranked table per weight profile (valuecsv_ray.leaderboard)
    report/        report.md / report.html with the heatmap, profiles, leaderboard and rank chart
No torch, no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valuecsv_ray.audit.outputs import SCORES
from valuecsv_ray.leaderboard.board import LEADERBOARD_DIR, LEADERBOARD_FILES
from valuecsv_ray.storage import join

COLLECT, AUDIT, LEADERBOARD, REPORT = "collect", "audit", LEADERBOARD_DIR, "report"


@dataclass(frozen=True)
class EvalLayout:
    """The step folders of one evaluation; `root` is a path or a URI (object storage)."""

    root: str | Path

    @property
    def collect(self) -> str:
        return join(self.root, COLLECT)

    @property
    def audit(self) -> str:
        return join(self.root, AUDIT)

    @property
    def leaderboard(self) -> str:
        return join(self.root, LEADERBOARD)

    @property
    def report(self) -> str:
        return join(self.root, REPORT)


def audit_source(path: Path) -> Path:
    """EVAL/audit for an evaluation folder; any other folder (an audit OUT, its stats/) as given."""
    path = Path(path)
    return path / AUDIT if (path / AUDIT / SCORES).is_dir() else path


def leaderboard_dir_for(audit_root: Path) -> Path:
    """EVAL/leaderboard for an audit at EVAL/audit, else OUT/leaderboard inside the audit folder."""
    audit_root = Path(audit_root)
    return audit_root.parent / LEADERBOARD if audit_root.name == AUDIT else audit_root / LEADERBOARD


def find_leaderboard(stats_dir: Path) -> Path | None:
    """The leaderboard folder of the audit whose stats are in `stats_dir`, if one was written."""
    folder = leaderboard_dir_for(Path(stats_dir).resolve().parent)
    return folder if (folder / LEADERBOARD_FILES["parquet"]).is_file() else None
