"""The audit commands of `valuecsv-ray` (registered on the main group in cli.py).

    valuecsv-ray audit answers.jsonl --registry runs/quickstart --out audit/run1
    valuecsv-ray audit ../shared/data/quest100.xlsx --wide --registry runs/x --out audit/quest100
    valuecsv-ray report audit/quest100/stats
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from valuecsv_ray.config import AuditConfig, ConfigError, load_audit_config, parse_overrides

_HELP = {f.name: f.metadata["help"] for f in AuditConfig.__dataclass_fields__.values()}


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.command("audit")
@click.argument("inputs", nargs=-1)
@click.option("--registry", help=_HELP["registry"])
@click.option("--out", help=_HELP["out"])
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of audit settings (see configs/audit-*.yaml)")
@click.option("--wide", is_flag=True, default=None, help=_HELP["wide"])
@click.option("--text-column", help=_HELP["text_column"])
@click.option("--model-column", help=_HELP["model_column"])
@click.option("--prompt-column", help=_HELP["prompt_column"])
@click.option("--id-column", help=_HELP["id_column"])
@click.option("--question-column", help=_HELP["question_column"])
@click.option("--batch-size", type=int, help=_HELP["batch_size"])
@click.option("--actors", type=int, help=_HELP["actors"])
@click.option("--gpus-per-actor", type=float, help=_HELP["gpus_per_actor"])
@click.option("--all-prompts", is_flag=True,
              help="statistics over every row, not only the prompts every model answered")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="any audit setting")
def audit_cmd(inputs: tuple[str, ...], config_path: str | None, all_prompts: bool,
              overrides: tuple[str, ...], **flags) -> None:
    """Score INPUTS (files, folders, globs, URIs) with a registry; write scores, quarantine, stats."""
    from valuecsv_ray.audit.pipeline import AuditError, run_audit
    from valuecsv_ray.audit.readers import InputError
    from valuecsv_ray.audit.stats import StatsError, stats_pass
    from valuecsv_ray.registry import RegistryError

    try:
        settings = {**{k: v for k, v in flags.items() if v is not None}, **parse_overrides(overrides)}
        if inputs:
            settings["inputs"] = list(inputs)
        cfg = load_audit_config(config_path, settings)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    try:
        summary = run_audit(cfg)
        stats, coverage = stats_pass(Path(cfg.out) / "scores", Path(cfg.out) / "stats", not all_prompts)
    except (AuditError, RegistryError, InputError, StatsError) as e:
        _fail(str(e))
    click.echo(format_summary(summary))
    click.echo(f"\n{_coverage_line(coverage)}\nmean probability per model and value:")
    click.echo(_value_table(stats))
    stats_dir = Path(cfg.out) / "stats"
    click.echo(f"\nstatistics in {stats_dir}; for the report: valuecsv-ray report {stats_dir}")


def format_summary(summary: dict) -> str:
    lines = [f"rows in {summary['rows_in']} = scored {summary['rows_scored']} + quarantined "
             f"{summary['rows_quarantined']}  ({summary['wall_s']:.1f} s)"]
    lines += [f"  quarantined, {reason}: {n}" for reason, n in summary["quarantine_reasons"].items()]
    lines += [f"  scored, model {model}: {n}" for model, n in summary["rows_per_model"].items()]
    return "\n".join(lines)


def _coverage_line(coverage: dict) -> str:
    from valuecsv_ray.audit.report import coverage_statement

    return coverage_statement(coverage)


def _value_table(stats) -> str:
    from valuecsv_ray.audit.report import model_value_table

    return model_value_table(stats).to_string(float_format=lambda x: f"{x:.3f}")


@click.command("report")
@click.argument("stats_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="default: STATS_DIR")
def report_cmd(stats_dir: str, out_dir: str | None) -> None:
    """Write report.md / report.html with a model x value heatmap and per-model profiles."""
    from valuecsv_ray.audit.report import write_report
    from valuecsv_ray.audit.stats import StatsError

    try:
        written = write_report(Path(stats_dir), Path(out_dir) if out_dir else None)
    except (StatsError, OSError) as e:
        _fail(str(e))
    for name, path in written.items():
        click.echo(f"{name}: {path}")
