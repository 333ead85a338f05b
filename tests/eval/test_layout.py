"""The eval room's folder layout: what `eval` writes and how the leaderboard and report find it."""

from __future__ import annotations

from pathlib import Path

import pytest

from valuecsv_ray.eval.config import N_BOOT, load_eval_config
from valuecsv_ray.eval.layout import EvalLayout, audit_source, find_leaderboard, leaderboard_dir_for
from valuecsv_ray.settings import ConfigError


def test_step_folders_of_a_path_and_of_a_uri(tmp_path):
    local = EvalLayout(tmp_path / "run1")
    assert [local.collect, local.audit, local.leaderboard, local.report] == [
        str(tmp_path / "run1" / name) for name in ("collect", "audit", "leaderboard", "report")]
    assert EvalLayout("s3://bucket/eval/run1/").audit == "s3://bucket/eval/run1/audit"


def test_an_eval_folder_leads_to_its_audit_and_others_stay_as_given(tmp_path):
    (tmp_path / "eval" / "audit" / "scores").mkdir(parents=True)
    assert audit_source(tmp_path / "eval") == tmp_path / "eval" / "audit"
    assert audit_source(tmp_path / "eval" / "audit") == tmp_path / "eval" / "audit"
    assert audit_source(tmp_path / "other") == tmp_path / "other"


def test_default_leaderboard_folder(tmp_path):
    assert leaderboard_dir_for(tmp_path / "eval" / "audit") == tmp_path / "eval" / "leaderboard"
    assert leaderboard_dir_for(tmp_path / "run1") == tmp_path / "run1" / "leaderboard"


def test_a_leaderboard_is_found_only_where_one_was_written(tmp_path):
    stats = tmp_path / "eval" / "audit" / "stats"
    stats.mkdir(parents=True)
    assert find_leaderboard(stats) is None
    (tmp_path / "eval" / "leaderboard").mkdir()
    (tmp_path / "eval" / "leaderboard" / "leaderboard.parquet").write_bytes(b"")
    assert find_leaderboard(stats) == tmp_path / "eval" / "leaderboard"


def test_eval_settings_hold_the_collect_settings_and_report_every_problem(tmp_path):
    cfg = load_eval_config(None, {"suites": ["quest100"], "endpoints": "e.yaml", "out": str(tmp_path),
                                  "registry": "runs/x", "profiles": ["uniform"]})
    assert cfg.collect.suites == ["quest100"] and cfg.out == str(tmp_path) and cfg.n_boot == N_BOOT
    with pytest.raises(ConfigError) as caught:
        load_eval_config(None, {"suites": ["quest100"], "n_boot": 0, "profiles": "uniform"})
    text = str(caught.value)
    for problem in ("registry is required", "n_boot must be a positive integer", "profiles must be a list",
                    "endpoints is required", "out is required"):
        assert problem in text


def test_the_report_step_imports_no_ray():
    import subprocess
    import sys

    code = ("import sys, valuecsv_ray.eval.report, valuecsv_ray.cli; "
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)
    assert out.stdout.strip() == "[]"
