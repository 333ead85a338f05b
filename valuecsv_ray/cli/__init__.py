"""The `valuecsv-ray` command line.

    valuecsv-ray train --config configs/train/quickstart.yaml --set max_epochs=3
    valuecsv-ray registry show runs/quickstart
    valuecsv-ray data fetch --dest data/
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from valuecsv_ray.cli.options import Group, given, options_from
from valuecsv_ray.config import ConfigError, EvaluatorChoice, ServeConfig, TrainConfig, load_train_config
from valuecsv_ray.settings import build, parse_overrides
from valuecsv_ray.taxonomy import Label
from valuecsv_ray.text_table import text_table


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@click.group(cls=Group)
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
def main(verbose: bool) -> None:
    """Train, serve and run value evaluators for Chinese LLM outputs on Ray."""
    _setup_logging(verbose)


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of TrainConfig settings (see configs/train/)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override any setting, e.g. --set learning_rate=1e-3 (repeatable)")
@click.option("--address", help="Ray cluster address (default: RAY_ADDRESS, a running cluster, or local)")
@options_from(TrainConfig)
def train(config_path: str | None, overrides: tuple[str, ...], address: str | None, **flags) -> None:
    """Fine-tune the evaluators with Ray Train and print the registry's metrics table."""
    from valuecsv_ray.registry.manifest import format_metrics_table, load_registry, metrics_table

    try:
        cfg = load_train_config(config_path, {**given(flags), **parse_overrides(overrides)})
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    logging.getLogger(__name__).info("resolved config: %s", cfg.to_dict())
    from valuecsv_ray.cluster import connect
    from valuecsv_ray.train.runner import train_all

    if address:
        connect(address)

    path = train_all(cfg)
    registry = load_registry(path)
    click.echo(f"\nregistry {registry.registry_id} at {path}\n")
    click.echo(format_metrics_table(metrics_table(registry.manifest)))


@main.group()
def registry() -> None:
    """Inspect trained registries."""


@registry.command("show")
@click.argument("path", type=click.Path(file_okay=False))
def registry_show(path: str) -> None:
    """Print per-value test metrics (acc, P, R, F1, AUC, threshold, n_test) and macro means."""
    from valuecsv_ray.cli.distill import format_student_table
    from valuecsv_ray.registry.manifest import format_metrics_table, load_registry, metrics_table
    from valuecsv_ray.registry.students import agreements, student_summary

    reg = load_registry(path)
    m = reg.manifest
    click.echo(f"registry {reg.registry_id}  taxonomy={reg.taxonomy.name}  mode={m['mode']}  "
               f"backbone={m['backbone']}  data sha256={m['data']['sha256'][:12]}  "
               f"split seed={m['split']['seed']} {m['split']['counts']}\n")
    click.echo(format_metrics_table(metrics_table(m)))
    if agreements(m):  # a student: its agreement with the ensemble it was distilled from
        click.echo(f"\nstudent of {m['config'].get('teacher_registry_id')}, against that ensemble:")
        click.echo(format_student_table(m))
        click.echo(student_summary(m))


@registry.command("evaluate")
@click.argument("path", type=click.Path(file_okay=False, exists=True))
@click.option("--device", default=None, help="cpu or cuda (default: cuda when present)")
def registry_evaluate(path: str, device: str | None) -> None:
    """Re-evaluate a registry's evaluators through the engine's scoring path (temperature,
    threshold, test metrics, calibration, long-text figures), on the data and split it was
    trained on; for registries written before these were recorded."""
    from valuecsv_ray.registry.manifest import format_metrics_table, metrics_table
    from valuecsv_ray.train.evaluate import reevaluate_registry

    manifest = reevaluate_registry(Path(path), device)
    click.echo(f"registry {manifest['registry_id']} re-evaluated\n")
    click.echo(format_metrics_table(metrics_table(manifest)))


@main.group()
def data() -> None:
    """Get and check annotated data."""


@data.command("fetch")
@click.option("--dest", type=click.Path(file_okay=False), default="data", show_default=True,
              help="folder to save the files in (prompt suites read it as --data-dir)")
@click.option("--dataset", "datasets", multiple=True, default=("valuecsv5000",), show_default=True,
              type=click.Choice(["valuecsv5000", "quest100", "cvalues-responsibility", "all"]),
              help="file to download: ValueCSV5000.xlsx, quest100.xlsx or CValues' responsibility "
                   "prompts (repeatable; `all` for every one)")
def data_fetch(dest: str, datasets: tuple[str, ...]) -> None:
    """Download the public data files (CC BY 4.0 / Apache-2.0) and verify their sha256."""
    from valuecsv_ray.fetch import KNOWN_FILES, fetch

    names = list(KNOWN_FILES) if "all" in datasets else dict.fromkeys(datasets)
    for name in names:
        path = fetch(name, Path(dest))
        click.echo(f"ok: {path} (sha256 verified)")


@data.command("check")
@click.argument("path")
@click.option("--skip-bad-rows", is_flag=True, help="list bad rows instead of failing on them")
@click.option("--taxonomy", default=None, help=TrainConfig.__dataclass_fields__["taxonomy"].metadata["help"])
def data_check(path: str, skip_bad_rows: bool, taxonomy: str | None) -> None:
    """Validate an annotated file and print sample and positive counts per value."""
    from valuecsv_ray.taxonomy import load_taxonomy
    from valuecsv_ray.train.annotated import load_annotated

    tax = load_taxonomy(taxonomy)
    loaded = load_annotated(path, tax, skip_bad_rows=skip_bad_rows)
    click.echo(f"{loaded.source}: {len(loaded)} samples, sha256 {loaded.sha256}")
    for note in loaded.excluded:
        click.echo(f"excluded: {note}")
    for b in loaded.bad_rows:
        click.echo(f"bad row {b.row}, column '{b.column}': {b.reason}")
    for value, count in zip(tax.labels, loaded.labels.sum(axis=0), strict=True):
        click.echo(f"  {value.id:<13} {value.zh}  positive {int(count):>5} ({count / len(loaded):.1%})")


@main.command("backbone")
@click.argument("out", type=click.Path(file_okay=False))
def backbone_cmd(out: str) -> None:
    """Save the offline tiny BERT backbone as an ordinary HF folder at OUT."""
    from valuecsv_ray.backbone import save_tiny_backbone

    click.echo(f"saved tiny backbone to {save_tiny_backbone(Path(out))}")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--port", default=8000, show_default=True, help="HTTP port")
@click.option("--address", help="Ray cluster address (default: RAY_ADDRESS, a running cluster, or local)")
@options_from(ServeConfig)
def serve_cmd(host: str, port: int, address: str | None, **flags) -> None:
    """Serve the ensemble over HTTP until Ctrl-C (token: $VALUECSV_SERVE_TOKEN).

    Takes the same settings, with the same defaults, as the `args:` of serve_configs/*.yaml;
    for deployments use `serve run serve_configs/ensemble.yaml` or `serve deploy`.
    """
    from ray import serve

    from valuecsv_ray.cluster import connect
    from valuecsv_ray.config import serve_config
    from valuecsv_ray.registry.manifest import load_registry
    from valuecsv_ray.serve import TOKEN_ENV, app_builder
    from valuecsv_ray.serve.proxy import controller_options

    try:
        cfg = serve_config(given(flags))
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    load_registry(cfg.registry)
    connect(address)
    serve.start(http_options={"host": host, "port": port}, controller_options=controller_options())
    app = app_builder(cfg.to_dict())
    guard = "Bearer token required" if os.environ.get(TOKEN_ENV) else "no token set"
    click.echo(f"serving {cfg.registry} at http://{host}:{port}/v1/score ({guard}); docs at /docs")
    serve.run(app, name="valuecsv", route_prefix="/", blocking=True)


@main.command("score")
@click.argument("texts", nargs=-1, required=True)
@click.option("--registry", type=click.Path(file_okay=False), help="score locally with this registry")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True,
              help="endpoint to query when --registry is not given")
@click.option("--token", envvar="VALUECSV_SERVE_TOKEN", help="Bearer token (default: $VALUECSV_SERVE_TOKEN)")
@options_from(EvaluatorChoice)
def score_cmd(texts: tuple[str, ...], registry: str | None, url: str, token: str | None, **flags) -> None:
    """Score TEXTS against the registry's values and print a table (value x text)."""
    if registry:
        from valuecsv_ray.registry.students import scorer_location
        from valuecsv_ray.scoring.engine import Ensemble

        try:
            choice = build(EvaluatorChoice, "scorer", given(flags))
        except ConfigError as e:
            raise click.UsageError(str(e)) from e
        engine = Ensemble.from_registry(scorer_location(registry, **choice.kwargs()))
        results, labels = engine.score(list(texts)).to_records(), list(engine.taxonomy.labels)
    else:
        results, labels = _query(url, list(texts), token)
    click.echo(format_scores(list(texts), results, labels))


def _query(url: str, texts: list[str], token: str | None) -> tuple[list[dict], list[Label]]:
    """The endpoint's scores and its values (/v1/values); retries while it is busy or restarting,
    raises EndpointError otherwise."""
    from valuecsv_ray.scoring.client import request_json, score_texts

    results = score_texts(url, texts, token)
    values = request_json(url.rstrip("/") + "/v1/values", token=token)
    return results, [Label(**{k: v[k] for k in ("id", "en", "zh", "group", "column")})
                     for v in values["labels"]]


def format_scores(texts: list[str], results: list[dict], labels: list[Label]) -> str:
    """Value x text table of probabilities, values in taxonomy order; '*' marks values labelled present."""
    header = ["value", "group"] + [f"[{i}] {t[:12]}" for i, t in enumerate(texts)]
    rows = [[v.name, v.group] + [f"{r['probs'][v.id]:.3f}{'*' if r['labels'][v.id] else ' '}"
                                 for r in results] for v in labels]
    table = text_table(header, rows, right=range(2, len(header)))
    return table + "\n* = above the evaluator's threshold"


def _register_commands() -> None:
    """The commands of the other stages, each in its own module."""
    from valuecsv_ray.cli.adaptive import adaptive
    from valuecsv_ray.cli.audit import audit_cmd, report_cmd
    from valuecsv_ray.cli.collect import collect_cmd
    from valuecsv_ray.cli.cvalues import cvalues
    from valuecsv_ray.cli.distill import distill_cmd
    from valuecsv_ray.cli.eval import eval_cmd
    from valuecsv_ray.cli.items import items
    from valuecsv_ray.cli.leaderboard import compare_cmd, leaderboard_cmd
    from valuecsv_ray.cli.profiles import profiles_cmd
    from valuecsv_ray.cli.rating import rating

    for command in (audit_cmd, report_cmd, collect_cmd, eval_cmd, leaderboard_cmd, profiles_cmd, compare_cmd,
                    cvalues, rating, distill_cmd, items, adaptive):
        main.add_command(command)


_register_commands()
