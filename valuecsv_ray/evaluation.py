"""Evaluate LLMs end to end: collect answers -> audit them -> statistics -> leaderboard -> report.

    result = run_eval(load_collect_config(None, {"suites": ["quest100"], "endpoints": "endpoints.yaml",
                                                 "out": "eval/run1"}), registry="runs/quickstart")
    print(format_leaderboard(result.board))

Output folder (each step resumes where a previous run stopped; the last two are recomputed):
    collect/       the answers (valuecsv_ray.collect.pipeline): responses/, prompts.parquet, summary.json
    audit/         their value scores and statistics (valuecsv_ray.audit.pipeline): scores/,
                   quarantine/, stats/
    leaderboard/   one ranked table per weight profile (valuecsv_ray.leaderboard)
    report/        report.md / report.html with the heatmap, profiles, leaderboard and rank chart
Answers that did not come back (a status other than "ok") are quarantined by the audit with their
status, never scored. `write_eval_report` is the step that joins the audit report and the
leaderboard's section (also what `valuecsv-ray report` writes).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from valuecsv_ray.audit.outputs import SCORES
from valuecsv_ray.audit.pipeline import AuditResult, run_audit
from valuecsv_ray.audit.report import write_report
from valuecsv_ray.audit.stats import read_scores
from valuecsv_ray.collect.config import CollectConfig
from valuecsv_ray.collect.pipeline import RESPONSES, CollectResult, run_collect
from valuecsv_ray.config import load_audit_config
from valuecsv_ray.leaderboard import leaderboard, load_profiles, presets, write_leaderboard
from valuecsv_ray.leaderboard.report import find_leaderboard, leaderboard_section
from valuecsv_ray.storage import is_uri, join, local_folder, located

log = logging.getLogger(__name__)
COLLECT, AUDIT, LEADERBOARD, REPORT = "collect", "audit", "leaderboard", "report"


@dataclass(frozen=True)
class EvalResult:
    out: Path | str  # a Path, or a URI (object storage)
    collected: CollectResult
    audited: AuditResult
    board: pd.DataFrame  # leaderboard rows: profile, rank, model, score, lo, hi, n_prompts
    report: dict[str, Path | str]  # write_eval_report's files


def run_eval(
    cfg: CollectConfig,
    registry: str,
    profiles: list[str] | None = None,
    n_boot: int = 2000,
    audit_settings: dict | None = None,
) -> EvalResult:
    """Every step into cfg.out; `profiles` default to every preset of the registry's taxonomy
    (uniform and one per group); `audit_settings` are extra audit settings (e.g. actors)."""
    out = cfg.out
    log.info("eval step 1/4: collect into %s", join(out, COLLECT))
    collected = run_collect(dataclasses.replace(cfg, out=join(out, COLLECT)))
    log.info("eval step 2/4: audit into %s", join(out, AUDIT))
    audit_cfg = load_audit_config(
        None,
        {
            **(audit_settings or {}),
            "inputs": [str(collected.responses_dir)],
            "registry": registry,
            "out": join(out, AUDIT),
        },
    )
    audited = run_audit(audit_cfg)
    log.info("eval step 3/4: leaderboard into %s", join(out, LEADERBOARD))
    scores = read_scores(join(out, AUDIT, SCORES), audited.taxonomy)
    chosen = load_profiles(profiles or list(presets(audited.taxonomy)), audited.taxonomy)
    board = leaderboard(scores, audited.taxonomy, chosen, n_boot=n_boot)
    with local_folder(join(out, LEADERBOARD)) as board_dir:  # uploaded at the end where out is a URI
        write_leaderboard(board, board_dir)
        log.info("eval step 4/4: report into %s", join(out, REPORT))
        report = write_eval_report(audited.stats_dir, join(out, REPORT), leaderboard_dir=board_dir)
    return EvalResult(located(out), collected, audited, board, report)


def write_eval_report(stats_dir: str | Path, out_dir: str | Path | None = None,
                      leaderboard_dir: Path | None = None) -> dict[str, Path | str]:
    """The audit report of `stats_dir` (write_report) with the Leaderboard section and ranks.png of
    `leaderboard_dir`, else of one found beside a local audit; without one, the audit report alone."""
    if leaderboard_dir is None and not is_uri(stats_dir):
        leaderboard_dir = find_leaderboard(Path(stats_dir))
    sections = [] if leaderboard_dir is None else [partial(leaderboard_section, Path(leaderboard_dir))]
    return write_report(stats_dir, out_dir, sections)


__all__ = ["run_eval", "write_eval_report", "EvalResult", "RESPONSES"]
