"""Evaluate LLMs end to end: collect answers -> audit them -> statistics -> leaderboard -> report.

    result = run_eval(load_eval_config(None, {"suites": ["quest100"], "endpoints": "endpoints.yaml",
                                              "registry": "runs/quickstart", "out": "eval/run1"}))
    print(format_leaderboard(result.board))

Each step writes its folder of `EvalLayout(cfg.out)` and resumes where a previous run stopped; the
leaderboard and report are recomputed. Answers that did not come back (a status other than "ok")
are quarantined by the audit with their status, never scored.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from valuecsv_ray.audit.outputs import SCORES
from valuecsv_ray.audit.pipeline import AuditResult, run_audit
from valuecsv_ray.audit.stats import read_scores
from valuecsv_ray.collect.pipeline import CollectResult, run_collect
from valuecsv_ray.config import load_audit_config
from valuecsv_ray.eval.config import EvalConfig
from valuecsv_ray.eval.layout import EvalLayout
from valuecsv_ray.eval.report import write_eval_report
from valuecsv_ray.leaderboard import leaderboard, load_profiles, presets, write_leaderboard
from valuecsv_ray.leaderboard.similarity import similarity, write_similarity
from valuecsv_ray.storage import join, local_folder, located

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    out: Path | str  # a Path, or a URI (object storage)
    collected: CollectResult
    audited: AuditResult
    board: pd.DataFrame  # leaderboard rows: profile, rank, model, score, lo, hi, n_prompts
    report: dict[str, Path | str]  # write_eval_report's files


def run_eval(cfg: EvalConfig, audit_settings: dict | None = None, progress: bool = True) -> EvalResult:
    """Every step into cfg.out; `audit_settings` are extra audit settings (e.g. actors)."""
    layout = EvalLayout(cfg.out)
    log.info("eval step 1/4: collect into %s", layout.collect)
    collected = run_collect(dataclasses.replace(cfg.collect, out=layout.collect), progress=progress)
    log.info("eval step 2/4: audit into %s", layout.audit)
    audit_cfg = load_audit_config(
        None,
        {**(audit_settings or {}), "inputs": [str(collected.responses_dir)], "registry": cfg.registry,
         "out": layout.audit},
    )
    audited = run_audit(audit_cfg)
    log.info("eval step 3/4: leaderboard into %s", layout.leaderboard)
    scores = read_scores(join(layout.audit, SCORES), audited.taxonomy)
    chosen = load_profiles(cfg.profiles or list(presets(audited.taxonomy)), audited.taxonomy)
    board = leaderboard(scores, audited.taxonomy, chosen, n_boot=cfg.n_boot)
    with local_folder(layout.leaderboard) as board_dir:  # uploaded at the end where out is a URI
        write_leaderboard(board, board_dir)
        write_similarity(similarity(scores, audited.taxonomy, chosen), board_dir)  # beside it, for the report
        log.info("eval step 4/4: report into %s", layout.report)
        report = write_eval_report(audited.stats_dir, layout.report, leaderboard_dir=board_dir)
    return EvalResult(located(cfg.out), collected, audited, board, report)
