"""The `leaderboard` and `compare` commands as a user types them (click's CliRunner), and the
report that gains a Leaderboard section and ranks.png once a leaderboard exists."""

import re
import warnings

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from valuecsv_ray.audit.stats import StatsError
from valuecsv_ray.cli.leaderboard import compare_cmd, leaderboard_cmd
from valuecsv_ray.eval.report import write_eval_report
from valuecsv_ray.leaderboard.board import load_leaderboard

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(command, *args: str):
    return CliRunner().invoke(command, [str(a) for a in args])


def test_leaderboard_on_an_eval_folder_writes_beside_the_audit(eval_dir, tax):
    result = run(leaderboard_cmd, eval_dir, "--profile", "uniform", "--profile", tax.groups[0],
                 "--n-boot", "200", "--seed", "5")
    assert result.exit_code == 0, result.output
    out = eval_dir / "leaderboard"
    assert {p.name for p in out.iterdir()} == {"leaderboard.parquet", "leaderboard.csv", "profiles.json",
                                               "similarity.parquet", "similarity.csv"}
    board, meta = load_leaderboard(out)
    assert list(dict.fromkeys(board["profile"])) == ["uniform", tax.groups[0]]
    assert meta["n_boot"] == 200 and meta["seed"] == 5 and (board["n_prompts"] == 26).all()
    assert "profile uniform (26 common prompts)" in result.stdout
    assert f"profile {tax.groups[0]} (26 common prompts)" in result.stdout
    top = board.iloc[0]
    assert f"   1  {top.model}" in result.stdout and f"{top.score:.2f}" in result.stdout


def test_leaderboard_defaults_and_explicit_out(eval_dir, tmp_path):
    audit = eval_dir / "audit"
    assert run(leaderboard_cmd, audit / "stats", "--n-boot", "50").exit_code == 0
    board, _ = load_leaderboard(eval_dir / "leaderboard")  # stats dir of EVAL/audit -> EVAL/leaderboard
    assert set(board["profile"]) == {"uniform"}
    result = run(leaderboard_cmd, audit, "--n-boot", "50", "--out", tmp_path / "mine")
    assert result.exit_code == 0 and (tmp_path / "mine" / "leaderboard.parquet").is_file()


def test_leaderboard_of_a_plain_audit_folder_goes_inside_it(tmp_path, toy, make_scores, make_audit):
    out = make_audit(tmp_path / "run1", make_scores(toy, {"a": 0.1, "b": 0.0}), toy)
    result = run(leaderboard_cmd, out, "--profile", "inner", "--n-boot", "50")
    assert result.exit_code == 0, result.output
    assert (out / "leaderboard" / "leaderboard.parquet").is_file()


def test_leaderboard_errors_go_to_stderr_with_exit_1(eval_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", "values": {"no_such_value": 1}}), encoding="utf-8")
    result = run(leaderboard_cmd, eval_dir, "--profile", bad)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {bad}: invalid weight profile")
    assert "values.no_such_value: unknown value id" in result.stderr
    result = run(leaderboard_cmd, tmp_path)
    assert result.exit_code == 1 and "not an evaluation, audit or stats folder" in result.stderr


def test_compare_prints_the_table_and_writes_csv(eval_dir, tmp_path, tax):
    csv = tmp_path / "cmp.csv"
    result = run(compare_cmd, eval_dir, "qwen-7b", "通义千问", "--out", csv, "--n-boot", "300")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("a = qwen-7b, b = 通义千问: paired over 26 common prompts")
    table = pd.read_csv(csv)
    assert table["key"].tolist() == [*tax.ids, *tax.groups, "all"]
    assert (table.loc[table["scope"] == "overall", "diff"] > 0).all()  # qwen-7b's offset is 0.1 higher


def test_compare_with_an_unknown_model_lists_the_models(eval_dir):
    result = run(compare_cmd, eval_dir, "qwen-7b", "gpt-5")
    assert result.exit_code == 1
    assert result.stderr == "error: unknown model(s) 'gpt-5'; the scores hold: <gpt&4>, qwen-7b, 通义千问\n"


@pytest.fixture
def reported(eval_dir, tax):
    """A report on EVAL/audit/stats after a leaderboard with three profiles was written."""
    profiles = ["uniform", *tax.groups[:2]]
    args = [x for p in profiles for x in ("--profile", p)]
    assert run(leaderboard_cmd, eval_dir, *args, "--n-boot", "200").exit_code == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_eval_report(eval_dir / "audit" / "stats", eval_dir / "report")
    return {"paths": paths, "profiles": profiles, "warnings": caught, "eval": eval_dir}


def test_report_gains_the_leaderboard_section_and_ranks_chart(reported):
    from matplotlib.image import imread

    paths = reported["paths"]
    assert paths["ranks"] == reported["eval"] / "report" / "ranks.png"
    assert paths["ranks"].read_bytes()[:8] == PNG_MAGIC and imread(paths["ranks"])[..., :3].std() > 0.05
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "## Leaderboard" in md and "](ranks.png)" in md
    board, _ = load_leaderboard(reported["eval"] / "leaderboard")
    for profile in reported["profiles"]:
        assert f"### Profile {profile}" in md
    top = board.iloc[0]
    assert f"| 1 | {top.model} | {top.score:.2f} [{top.lo:.2f}, {top.hi:.2f}] |" in md
    page = paths["html"].read_text(encoding="utf-8")
    assert "### Profile similarity" in md  # the profiles that rank the values: all but uniform
    assert page.count("<table>") == 4 + len(reported["profiles"]) + 1 and '<img src="ranks.png"' in page
    assert "&lt;gpt&amp;4&gt;" in page and "<gpt&4>" not in page
    assert [str(w.message) for w in reported["warnings"] if issubclass(w.category, UserWarning)] == []


def test_report_takes_an_explicit_leaderboard_and_refuses_a_broken_one(reported, tmp_path):
    paths = write_eval_report(reported["eval"] / "audit" / "stats", tmp_path / "r",
                              leaderboard_dir=reported["eval"] / "leaderboard")
    assert paths["ranks"].is_file()
    with pytest.raises(StatsError, match=re.escape(f"leaderboard {tmp_path}: {tmp_path}: missing")):
        write_eval_report(reported["eval"] / "audit" / "stats", tmp_path / "r2", leaderboard_dir=tmp_path)
