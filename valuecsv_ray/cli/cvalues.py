"""The `cvalues` commands of `valuecsv-ray`: CValues multi-choice items, scoring and manual labels (offline).

    valuecsv-ray cvalues items demo --out eval/cvalues_items.jsonl
    valuecsv-ray cvalues score --items eval/cvalues_items.jsonl --responses eval/responses --out eval/cv
    valuecsv-ray cvalues import-manual eval/cv/need_check.xlsx --scored eval/cv
    valuecsv-ray cvalues mc demo --endpoints endpoints.yaml --out eval/cvalues-mc   # items + collect + score
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import pandas as pd

from valuecsv_ray.cli.options import Group
from valuecsv_ray.cvalues.items import mc_items, read_items, write_items
from valuecsv_ray.cvalues.manual import export_need_check, import_manual
from valuecsv_ray.cvalues.metrics import (
    compute_metrics,
    load_scored,
    parse_answers,
    read_responses,
    write_scored,
)
from valuecsv_ray.cvalues.pairs import DEMO, PAIR_SCHEMAS, demo_pairs_path, load_pairs
from valuecsv_ray.cvalues.parse import LABEL_NEED_CHECK, RULES
from valuecsv_ray.text_table import frame_table

NEED_CHECK_XLSX = "need_check.xlsx"  # score's default --manual-out, inside --out


@click.group("cvalues", cls=Group)
def cvalues() -> None:
    """CValues multi-choice test (X-PLUG/CValues): make items, score the answers, apply manual labels."""


@cvalues.command("items")
@click.argument("pairs")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="items file to write (.jsonl)")
@click.option("--format", "fmt", type=click.Choice(["auto", *PAIR_SCHEMAS]), default="auto",
              show_default=True,
              help="pairs format: CValues mc, CValues-Comparison, or user pairs")
def items_cmd(pairs: str, out: str, fmt: str) -> None:
    """Write both orders of each pair in PAIRS (a table file, or `demo`) as a prompt suite."""
    path = demo_pairs_path() if pairs == DEMO else Path(pairs)
    loaded = load_pairs(path, fmt)
    items = mc_items(loaded.pairs)
    written = write_items(items, out)
    click.echo(f"{path} ({loaded.source_format}): rows in {loaded.rows_in} = pairs {len(loaded.pairs)} + "
               f"merged duplicates {loaded.duplicates} + quarantined {len(loaded.quarantine)}")
    if len(loaded.quarantine):
        bad = written.with_name(written.stem + ".quarantine.csv")
        loaded.quarantine.to_csv(bad, index=False)
        click.echo(f"quarantined rows and reasons in {bad}")
    click.echo(f"wrote {len(items)} items ({len(loaded.pairs)} pairs x 2 orders) to {written}")


@cvalues.command("score")
@click.option("--items", "items_path", required=True, type=click.Path(dir_okay=False),
              help="the items file the answers were collected for")
@click.option("--responses", required=True, type=click.Path(), help="responses folder or .parquet file")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for metrics and tables")
@click.option("--manual-out", type=click.Path(dir_okay=False),
              help=f"xlsx for the Need_Check answers (default: OUT/{NEED_CHECK_XLSX})")
@click.option("--rules", type=click.Choice(list(RULES)), default="chinese_alpaca", show_default=True,
              help="upstream answer-parsing rule set")
def score_cmd(items_path: str, responses: str, out: str, manual_out: str | None, rules: str) -> None:
    """Parse the answers, compute acc/acc*/consistency/position bias, export Need_Check rows."""
    _score(items_path, responses, out, manual_out, rules)


def _score(items_path: str, responses: str, out: str, manual_out: str | None, rules: str) -> None:
    items = read_items(items_path)
    scored = parse_answers(items, read_responses(responses), rules)
    metrics = compute_metrics(scored.parsed, scored.not_collected)
    paths = write_scored(out, scored.parsed, scored.not_collected, metrics)
    if scored.ignored:
        click.echo(f"{scored.ignored} response rows of other prompt suites ignored")
    xlsx = Path(manual_out) if manual_out else Path(out) / NEED_CHECK_XLSX
    n_check = int((scored.parsed["parsed"] == LABEL_NEED_CHECK).sum())
    if n_check:
        export_need_check(scored.parsed, items, xlsx)
        click.echo(f"{n_check} answers need a person: fill manual_label in {xlsx}, then run "
                   f"valuecsv-ray cvalues import-manual {xlsx} --scored {out}")
    else:
        click.echo("no Need_Check answers: nothing to label by hand")
    _report(metrics, scored.not_collected)
    click.echo(f"\nmetrics in {paths['metrics']} and {paths['metrics_csv']}; "
               f"parsed answers in {paths['parsed']}")


@cvalues.command("mc")
@click.argument("pairs")
@click.option("--endpoints", required=True, type=click.Path(exists=True, dir_okay=False),
              help="YAML file listing the LLM endpoints (as for `valuecsv-ray collect`)")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="folder: items.jsonl, collect/ (the answers), scored/ (metrics); re-running resumes")
@click.option("--format", "fmt", type=click.Choice(["auto", *PAIR_SCHEMAS]), default="auto",
              show_default=True,
              help="pairs format: CValues mc, CValues-Comparison, or user pairs")
@click.option("--rules", type=click.Choice(list(RULES)), default="chinese_alpaca", show_default=True,
              help="upstream answer-parsing rule set")
def mc_cmd(pairs: str, endpoints: str, out: str, fmt: str, rules: str) -> None:
    """The whole multi-choice test on PAIRS (a file, or `demo`): items in both orders, the answers
    of every endpoint (Ray Data, resumable), then acc/acc*, consistency and position bias."""
    from valuecsv_ray.cli.collect import format_collect_summary, run_collect_or_exit
    from valuecsv_ray.collect.config import load_collect_config

    path = demo_pairs_path() if pairs == DEMO else Path(pairs)
    loaded = load_pairs(path, fmt)
    items_path = write_items(mc_items(loaded.pairs), Path(out) / "items.jsonl")
    if len(loaded.quarantine):
        click.echo(f"{len(loaded.quarantine)} pair rows quarantined (see `valuecsv-ray cvalues items`)")
    cfg = load_collect_config(None, {"suites": [str(items_path)], "endpoints": endpoints,
                                     "out": str(Path(out) / "collect")})
    collected = run_collect_or_exit(cfg)
    click.echo(format_collect_summary(collected.summary))
    _score(str(items_path), str(collected.responses_dir), str(Path(out) / "scored"), None, rules)


@cvalues.command("import-manual")
@click.argument("filled", type=click.Path(dir_okay=False))
@click.option("--scored", required=True, type=click.Path(file_okay=False), help="the folder `score` wrote")
def import_manual_cmd(filled: str, scored: str) -> None:
    """Apply the manual labels of FILLED (the Need_Check xlsx) and rewrite the metrics in SCORED."""
    parsed, not_collected = load_scored(scored)
    parsed, counts = import_manual(filled, parsed)
    metrics = compute_metrics(parsed, not_collected)
    paths = write_scored(scored, parsed, not_collected, metrics)
    click.echo(f"manual labels applied: {counts['filled']}; left blank: {counts['unfilled']}; "
               f"Need_Check left in total: {counts['need_check']}")
    _report(metrics, not_collected)
    click.echo(f"\nmetrics rewritten in {paths['metrics']} and {paths['metrics_csv']}")


def _interval(value: float, lo: float, hi: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f} [{lo:.3f},{hi:.3f}]"


def _number(value: float, fmt: str = ".3f") -> str:
    return "n/a" if math.isnan(value) else format(value, fmt)


def format_table(metrics: pd.DataFrame) -> str:
    """The overall row of each model: counts, acc and acc* with 95% intervals, consistency, position bias."""
    overall = metrics[metrics["scope"] == "overall"]
    table = pd.DataFrame({
        "model": overall["model"], "total": overall["total"], "correct": overall["correct"],
        "answered": overall["answered"],
        "acc [95% CI]": [_interval(r.acc, r.acc_lo, r.acc_hi) for r in overall.itertuples()],
        "acc* [95% CI]": [_interval(r.acc_star, r.acc_star_lo, r.acc_star_hi) for r in overall.itertuples()],
        "consistency": [_number(v) for v in overall["consistency"]],
        "position bias": [_number(v, "+.3f") for v in overall["position_bias"]],
        "not collected": overall["not_collected"],
    })
    return frame_table(table, right=[c for c in table.columns if c != "model"])


def _report(metrics: pd.DataFrame, not_collected: pd.DataFrame) -> None:
    click.echo("\n" + format_table(metrics))
    for row in metrics[metrics["scope"] == "overall"].itertuples():
        if row.total == 0:
            click.echo(f"model {row.model}: no answers collected, nothing to score")
        elif row.answered == 0:
            hint = "; label the Need_Check answers and run import-manual" if row.need_check else ""
            click.echo(f"model {row.model}: no answered items ({row.refuse} Refuse, {row.need_check} "
                       f"Need_Check of {row.total}), so acc* is undefined (n/a){hint}")
        if row.not_collected:
            statuses = not_collected[not_collected["model"] == row.model]["status"].value_counts()
            click.echo(f"model {row.model}: {row.not_collected} answers not collected, left out of the "
                       f"totals ({json.dumps(statuses.to_dict())})")
