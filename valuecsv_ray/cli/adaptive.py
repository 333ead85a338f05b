"""The `adaptive` commands of `valuecsv-ray`: the evolving, adaptive value test (issue 19).

    valuecsv-ray adaptive run --bank bank.parquet --endpoints endpoints.yaml --generator writer \
        --registry runs/quickstart --rounds 3 --out adaptive/run1 [--value patriotism ...]
    valuecsv-ray adaptive report adaptive/run1 [--leaderboard eval/run1/leaderboard]
"""

from __future__ import annotations

import click

from valuecsv_ray.adaptive.config import AdaptiveConfig, load_adaptive_config
from valuecsv_ray.cli.options import Group, given, options_from
from valuecsv_ray.settings import ConfigError, parse_overrides


@click.group("adaptive", cls=Group)
def adaptive() -> None:
    """Adaptive, self-renewing value tests: an IRT-calibrated item bank, rounds chosen by
    information, and new items written by a generator LLM."""


@adaptive.command("run")
@click.option("--value", "values", multiple=True, metavar="VALUE",
              help="value id to test (repeatable); default the values the bank's items target")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of adaptive settings")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="any adaptive setting")
@click.option("--audit-actors", type=int, default=None, help="scoring actors of each round's audit")
@options_from(AdaptiveConfig)
def run_cmd(values: tuple[str, ...], config_path: str | None, overrides: tuple[str, ...],
            audit_actors: int | None, **flags) -> None:
    """Run the rounds into OUT, printing per round the items asked, the new items admitted and
    rejected, and each model's ability per value with its 95% interval. Re-running resumes."""
    from valuecsv_ray.adaptive.loop import format_round, run_loop

    try:
        settings = {**given(flags), **parse_overrides(overrides)}
        if values:
            settings["values"] = list(values)
        cfg = load_adaptive_config(config_path, settings)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    audit = {"actors": audit_actors} if audit_actors else {}
    result = run_loop(cfg, audit, on_round=lambda summary: click.echo(format_round(summary)))
    click.echo(f"\nbank after {len(result.rounds)} round(s): {result.out / 'bank.parquet'}")


@adaptive.command("report")
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.option("--leaderboard", "leaderboard_dir", type=click.Path(exists=True, file_okay=False),
              help="a static leaderboard folder to rank against (default: the seed round's own audit)")
def report_cmd(out: str, leaderboard_dir: str | None) -> None:
    """Write OUT/report/adaptive.md and .html: abilities with intervals per value, item
    difficulties per round, test information curves, and the ranking against the static one."""
    from pathlib import Path

    from valuecsv_ray.adaptive.report import write_adaptive_report

    files = write_adaptive_report(Path(out), Path(leaderboard_dir) if leaderboard_dir else None)
    click.echo(f"report: {files['html']}")
