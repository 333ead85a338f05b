"""The `eval` command of `valuecsv-ray` (registered on the main group in cli/__init__.py).

    valuecsv-ray eval --suite quest100 --endpoints endpoints.yaml --registry runs/quickstart --out eval/run1
    valuecsv-ray eval --config configs/eval/stub.yaml --set out=eval/run2
"""

from __future__ import annotations

import click

from valuecsv_ray.cli.options import Command, given, options_from
from valuecsv_ray.eval.config import EvalConfig, load_eval_config
from valuecsv_ray.settings import ConfigError, parse_overrides
from valuecsv_ray.tables import SUPPORTED

SUITE_HELP = f"quest100, cvalues-responsibility, NAME=PATH, or a table file ({SUPPORTED}) (repeatable)"


def eval_config(suites: tuple[str, ...], profiles: tuple[str, ...], config_path: str | None,
                overrides: tuple[str, ...], flags: dict) -> EvalConfig:
    """The run's settings from defaults, the YAML file, --set and the options given."""
    try:
        settings = {**given(flags), **parse_overrides(overrides)}
        if suites:
            settings["suites"] = list(suites)
        if profiles:
            settings["profiles"] = list(profiles)
        return load_eval_config(config_path, settings)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e


@click.command("eval", cls=Command)
@click.option("--suite", "suites", multiple=True, metavar="SUITE", help=SUITE_HELP)
@click.option("--profile", "profiles", multiple=True, metavar="PROFILE",
              help="leaderboard weight profile: a preset (`valuecsv-ray profiles` lists them) or a YAML "
                   "file; repeatable (default: every preset of the registry's taxonomy)")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of eval settings (collect settings, registry, profiles, n_boot)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="any eval or collect setting")
@click.option("--out", help="evaluation folder, a path or an s3://, gs:// URI: collect/, audit/, "
                               "leaderboard/, report/; re-running resumes")
@options_from(EvalConfig, skip=("out",))
def eval_cmd(suites: tuple[str, ...], profiles: tuple[str, ...], config_path: str | None,
             overrides: tuple[str, ...], **flags) -> None:
    """Evaluate LLMs end to end into OUT: collect their answers, audit them with REGISTRY, write the
    statistics, the leaderboard per weight profile and the report. Re-running resumes each step."""
    from valuecsv_ray.cli.audit import format_summary
    from valuecsv_ray.cli.collect import format_collect_summary
    from valuecsv_ray.eval.pipeline import run_eval
    from valuecsv_ray.leaderboard import format_leaderboard

    cfg = eval_config(suites, profiles, config_path, overrides, flags)
    result = run_eval(cfg)
    click.echo("\ncollect: " + format_collect_summary(result.collected.summary))
    click.echo("audit: " + format_summary(result.audited.summary))
    click.echo("\n" + format_leaderboard(result.board))
    click.echo(f"\nreport: {result.report['html']}\nall outputs in {result.out}")
