"""The response-collection commands of `valuecsv-ray` (registered on the main group in cli/__init__.py).

valuecsv-ray collect --suite quest100 --data-dir data --endpoints endpoints.yaml --out eval/collect
valuecsv-ray collect --suite prompts.jsonl --endpoints endpoints.yaml --out c1 --limit 10
"""

from __future__ import annotations

import sys

import click

from valuecsv_ray.cli.options import given, options_from
from valuecsv_ray.collect.config import CollectConfig, load_collect_config
from valuecsv_ray.settings import ConfigError, parse_overrides


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def collect_config(
    suites: tuple[str, ...], config_path: str | None, overrides: tuple[str, ...], flags: dict
) -> CollectConfig:
    """The run's settings from defaults, the YAML file, --set and the options given."""
    try:
        settings = {**given(flags), **parse_overrides(overrides)}
        if suites:
            settings["suites"] = list(suites)
        return load_collect_config(config_path, settings)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e


def run_collect_or_exit(cfg: CollectConfig):
    """run_collect, with the project's expected errors as a message and exit status 1."""
    from valuecsv_ray.collect.pipeline import CollectError, run_collect
    from valuecsv_ray.collect.suites import SuiteError

    try:
        return run_collect(cfg)
    except (CollectError, SuiteError, ConfigError) as e:
        fail(str(e))


def format_collect_summary(summary: dict) -> str:
    lines = [
        f"rows planned {summary['rows_planned']}, written {summary['rows_written']}, "
        f"retries {summary['retries']}"
    ]
    for model, counts in summary["by_endpoint"].items():
        listed = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
        lines.append(f"  {model}: {listed}")
    return "\n".join(lines)


@click.command("collect")
@click.option(
    "--suite",
    "suites",
    multiple=True,
    metavar="SUITE",
    help="quest100, cvalues-responsibility, NAME=PATH, or a JSONL/CSV/Parquet file (repeatable)",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML file of collect settings",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="any collect setting")
@options_from(CollectConfig)
def collect_cmd(
    suites: tuple[str, ...], config_path: str | None, overrides: tuple[str, ...], **flags
) -> None:
    """Ask every endpoint every prompt of the suites; write one row per (prompt, endpoint, sample)
    to OUT/responses (Parquet that `valuecsv-ray audit` reads as it is). Re-running resumes."""
    cfg = collect_config(suites, config_path, overrides, flags)
    result = run_collect_or_exit(cfg)
    click.echo(format_collect_summary(result.summary))
    click.echo(
        f"\nresponses in {result.responses_dir}; to score them: valuecsv-ray audit "
        f"{result.responses_dir} --registry REGISTRY --out AUDIT_DIR"
    )
