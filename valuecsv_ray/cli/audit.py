"""The audit commands of `valuecsv-ray` (registered on the main group in cli.py).

    valuecsv-ray audit answers.jsonl --registry runs/quickstart --out audit/run1
    valuecsv-ray audit ../shared/data/quest100.xlsx --wide --registry runs/x --out audit/quest100
    valuecsv-ray report audit/quest100/stats
"""

from __future__ import annotations

import click

from valuecsv_ray.cli.options import Command, given, options_from
from valuecsv_ray.config import AuditConfig, ConfigError, load_audit_config
from valuecsv_ray.settings import parse_overrides


@click.command("audit", cls=Command)
@click.argument("inputs", nargs=-1)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of audit settings (see configs/audit/)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="any audit setting")
@options_from(AuditConfig)
def audit_cmd(inputs: tuple[str, ...], config_path: str | None, overrides: tuple[str, ...], **flags) -> None:
    """Score INPUTS (files, folders, globs, URIs) with a registry; write scores, quarantine, stats."""
    from valuecsv_ray.audit.pipeline import run_audit
    from valuecsv_ray.audit.report import coverage_statement, model_value_table
    from valuecsv_ray.text_table import frame_table

    try:
        settings = {**given(flags), **parse_overrides(overrides)}
        if inputs:
            settings["inputs"] = list(inputs)
        cfg = load_audit_config(config_path, settings)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    result = run_audit(cfg)
    table = model_value_table(result.stats, result.taxonomy)
    click.echo(format_summary(result.summary))
    click.echo(f"\n{coverage_statement(result.coverage)}\nmean probability per model and value:")
    click.echo(frame_table(table, index=True))
    click.echo(f"\nstatistics in {result.stats_dir}; for the report: valuecsv-ray report {result.stats_dir}")


def format_summary(summary: dict) -> str:
    lines = [f"rows in {summary['rows_in']} = scored {summary['rows_scored']} + quarantined "
             f"{summary['rows_quarantined']}  ({summary['wall_s']:.1f} s)"]
    lines += [f"  quarantined, {reason}: {n}" for reason, n in summary["quarantine_reasons"].items()]
    lines += [f"  scored, model {model}: {n}" for model, n in summary["rows_per_model"].items()]
    return "\n".join(lines)


@click.command("report", cls=Command)
@click.argument("stats_dir")
@click.option("--out", "out_dir", help="folder or s3://, gs:// URI; default: STATS_DIR")
def report_cmd(stats_dir: str, out_dir: str | None) -> None:
    """Write report.md / report.html with a model x value heatmap and per-model profiles, for the
    values of the taxonomy recorded in STATS_DIR."""
    from valuecsv_ray.eval.report import write_eval_report

    written = write_eval_report(stats_dir, out_dir)
    for name, path in written.items():
        click.echo(f"{name}: {path}")
