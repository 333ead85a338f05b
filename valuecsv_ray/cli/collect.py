"""The response-collection commands of `valuecsv-ray` (registered on the main group in cli/__init__.py).

    valuecsv-ray collect --suite quest100 --data-dir data --endpoints endpoints.yaml --out eval/collect
    valuecsv-ray collect --suite prompts.jsonl --endpoints endpoints.yaml --out c1 --limit 10
"""

from __future__ import annotations

import click

from valuecsv_ray.cli.options import Command, given, options_from
from valuecsv_ray.collect.config import CollectConfig, load_collect_config
from valuecsv_ray.settings import ConfigError, parse_overrides
from valuecsv_ray.tables import SUPPORTED


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
    """run_collect; a run stopped at its budget shows its summary before the error."""
    from valuecsv_ray.collect.pipeline import CollectStopped, run_collect

    try:
        return run_collect(cfg)
    except CollectStopped as e:
        click.echo(format_collect_summary(e.summary))
        raise


def format_collect_summary(summary: dict) -> str:
    lines = [
        f"rows planned {summary['rows_planned']}, written {summary['rows_written']}, "
        f"retries {summary['retries']}"
    ]
    usage = summary.get("usage", {"by_endpoint": {}})["by_endpoint"]
    for model, counts in summary["by_endpoint"].items():
        listed = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
        lines.append(f"  {model}: {listed}{_spent(usage.get(model))}")
    if summary.get("redo_failed"):
        redo = summary["redo_failed"]
        now = ", ".join(f"{status} {n}" for status, n in sorted(redo["now"].items()))
        lines.append(f"redone (failed rows asked again): {redo['retried']}, now {now}")
    if "this_run" in summary:
        run = summary["this_run"]
        lines.append(
            f"this run: {run['rows_asked']} rows asked, {run['tokens']} tokens, cost {run['cost']:.4g}"
            + (f"; stopped: {run['stopped']}" if run["stopped"] else "")
        )
    return "\n".join(lines)


def _spent(usage: dict | None) -> str:
    if not usage:
        return ""
    cost = "" if usage["cost"] is None else f", cost {usage['cost']:.4g}"
    return f" ({usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens{cost})"


@click.command("collect", cls=Command)
@click.option(
    "--suite",
    "suites",
    multiple=True,
    metavar="SUITE",
    help=f"quest100, cvalues-responsibility, NAME=PATH, or a table file ({SUPPORTED}) (repeatable)",
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
