"""The `valuecsv-ray` command line.

    valuecsv-ray train --config configs/quickstart.yaml --set max_epochs=3
    valuecsv-ray registry show runs/quickstart
    valuecsv-ray data fetch --dest data/
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from valuecsv_ray.config import ConfigError, TrainConfig, load_train_config, parse_overrides

# flags that map one-to-one onto TrainConfig fields (None = not given, keep the config's)
_TRAIN_FLAGS = {
    "name": click.option("--name", help=TrainConfig.__dataclass_fields__["name"].metadata["help"]),
    "runs_dir": click.option("--runs-dir", help="folder holding one registry per job name"),
    "data": click.option("--data", help="annotated xlsx/csv/jsonl/parquet, or 'sample'"),
    "values": click.option("--values", help="'all' or comma list of value ids, e.g. freedom,justice"),
    "mode": click.option("--mode", type=click.Choice(["binary", "multilabel"]),
                         help="12 binary evaluators, or one multi-label model"),
    "backbone": click.option("--backbone", help="HF model name or folder, or 'tiny' (offline)"),
    "max_epochs": click.option("--max-epochs", type=int, help="upper bound on epochs (default 20)"),
    "max_length": click.option("--max-length", type=int, help="max tokens per text (default 512)"),
    "limit_rows": click.option("--limit-rows", type=int, help="use only the first N rows"),
    "num_workers": click.option("--num-workers", type=int, help="Ray Train workers per evaluator"),
    "use_gpu": click.option("--use-gpu/--no-gpu", default=None, help="train on GPUs"),
    "max_concurrent": click.option("--max-concurrent", type=int, help="evaluators training at once"),
    "skip_bad_rows": click.option("--skip-bad-rows", is_flag=True, default=None,
                                  help="report bad rows in bad_rows.csv instead of failing"),
}


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
def main(verbose: bool) -> None:
    """Train, serve and run value evaluators for Chinese LLM outputs on Ray."""
    _setup_logging(verbose)


def _with_train_flags(fn):
    for option in reversed(list(_TRAIN_FLAGS.values())):
        fn = option(fn)
    return fn


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of TrainConfig settings (see configs/)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override any setting, e.g. --set learning_rate=1e-3 (repeatable)")
@click.option("--address", help="Ray cluster address (default: RAY_ADDRESS, a running cluster, or local)")
@_with_train_flags
def train(config_path: str | None, overrides: tuple[str, ...], address: str | None, **flags) -> None:
    """Fine-tune the evaluators with Ray Train and print the registry's metrics table."""
    from valuecsv_ray.registry import format_metrics_table, load_registry, metrics_table

    try:
        settings = {**{k: v for k, v in flags.items() if v is not None}, **parse_overrides(overrides)}
        cfg = load_train_config(config_path, settings)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    logging.getLogger(__name__).info("resolved config: %s", cfg.to_dict())
    if address:
        import ray

        ray.init(address=address)
    from valuecsv_ray.train.runner import train_all

    path = _run_or_exit(lambda: train_all(cfg))
    registry = load_registry(path)
    click.echo(f"\nregistry {registry.registry_id} at {path}\n")
    click.echo(format_metrics_table(metrics_table(registry.manifest)))


def _run_or_exit(fn):
    """Run fn; turn the project's expected errors into a message and exit status 1."""
    from valuecsv_ray.backbone import BackboneError
    from valuecsv_ray.fetch import FetchError
    from valuecsv_ray.registry import RegistryError
    from valuecsv_ray.train.annotated import DataError
    from valuecsv_ray.train.runner import TrainingError

    try:
        return fn()
    except (DataError, RegistryError, TrainingError, BackboneError, FetchError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


@main.group()
def registry() -> None:
    """Inspect trained registries."""


@registry.command("show")
@click.argument("path", type=click.Path(file_okay=False))
def registry_show(path: str) -> None:
    """Print per-value test metrics (acc, P, R, F1, AUC, threshold, n_test) and macro means."""
    from valuecsv_ray.registry import format_metrics_table, load_registry, metrics_table

    reg = _run_or_exit(lambda: load_registry(path))
    m = reg.manifest
    click.echo(f"registry {reg.registry_id}  mode={m['mode']}  backbone={m['backbone']}  "
               f"data sha256={m['data']['sha256'][:12]}  split seed={m['split']['seed']} "
               f"{m['split']['counts']}\n")
    click.echo(format_metrics_table(metrics_table(m)))


@main.group()
def data() -> None:
    """Get and check annotated data."""


@data.command("fetch")
@click.option("--dest", type=click.Path(file_okay=False), default="data", show_default=True,
              help="folder to save ValueCSV5000.xlsx in")
def data_fetch(dest: str) -> None:
    """Download ValueCSV5000.xlsx (CC BY 4.0) and verify its sha256."""
    from valuecsv_ray.fetch import fetch_valuecsv5000

    path = _run_or_exit(lambda: fetch_valuecsv5000(Path(dest)))
    click.echo(f"ok: {path} (sha256 verified)")


@data.command("check")
@click.argument("path")
@click.option("--skip-bad-rows", is_flag=True, help="list bad rows instead of failing on them")
def data_check(path: str, skip_bad_rows: bool) -> None:
    """Validate an annotated file and print sample and positive counts per value."""
    from valuecsv_ray.taxonomy import VALUES
    from valuecsv_ray.train.annotated import load_annotated

    loaded = _run_or_exit(lambda: load_annotated(path, skip_bad_rows=skip_bad_rows))
    click.echo(f"{loaded.source}: {len(loaded)} samples, sha256 {loaded.sha256}")
    for note in loaded.excluded:
        click.echo(f"excluded: {note}")
    for b in loaded.bad_rows:
        click.echo(f"bad row {b.row}, column '{b.column}': {b.reason}")
    for value, count in zip(VALUES, loaded.labels.sum(axis=0), strict=True):
        click.echo(f"  {value.id:<13} {value.zh}  positive {int(count):>5} ({count / len(loaded):.1%})")


@main.command("backbone")
@click.argument("out", type=click.Path(file_okay=False))
def backbone_cmd(out: str) -> None:
    """Save the offline tiny BERT backbone as an ordinary HF folder at OUT."""
    from valuecsv_ray.backbone import save_tiny_backbone

    click.echo(f"saved tiny backbone to {save_tiny_backbone(Path(out))}")


@main.command("serve")
@click.option("--registry", required=True, type=click.Path(file_okay=False),
              help="registry folder to serve (written by `valuecsv-ray train`)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--port", default=8000, show_default=True, help="HTTP port")
@click.option("--max-batch-size", default=32, show_default=True, help="requests batched together")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when present)")
def serve_cmd(registry: str, host: str, port: int, max_batch_size: int, device: str | None) -> None:
    """Serve the ensemble over HTTP until Ctrl-C (token: $VALUECSV_SERVE_TOKEN).

    For deployments use `serve run serve_configs/ensemble.yaml` or `serve deploy`.
    """
    import ray
    from ray import serve

    from valuecsv_ray.registry import load_registry
    from valuecsv_ray.serve import TOKEN_ENV, app_builder

    _run_or_exit(lambda: load_registry(registry))
    ray.init()
    serve.start(http_options={"host": host, "port": port})
    app = app_builder({"registry": registry, "device": device, "max_batch_size": max_batch_size})
    guard = "Bearer token required" if os.environ.get(TOKEN_ENV) else "no token set"
    click.echo(f"serving {registry} at http://{host}:{port}/v1/score ({guard}); docs at /docs")
    serve.run(app, name="valuecsv", route_prefix="/", blocking=True)


@main.command("score")
@click.argument("texts", nargs=-1, required=True)
@click.option("--registry", type=click.Path(file_okay=False), help="score locally with this registry")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True,
              help="endpoint to query when --registry is not given")
@click.option("--token", envvar="VALUECSV_SERVE_TOKEN", help="Bearer token (default: $VALUECSV_SERVE_TOKEN)")
def score_cmd(texts: tuple[str, ...], registry: str | None, url: str, token: str | None) -> None:
    """Score TEXTS against the twelve values and print a table (value x text)."""
    if registry:
        from valuecsv_ray.scoring.engine import Ensemble

        engine = _run_or_exit(lambda: Ensemble.from_registry(registry))
        results = engine.score(list(texts)).to_records()
    else:
        results = _query(url, list(texts), token)
    click.echo(format_scores(list(texts), results))


def _query(url: str, texts: list[str], token: str | None) -> list[dict]:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url.rstrip("/") + "/v1/score", data=json.dumps({"texts": texts}).encode(),
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())["results"]
    except urllib.error.HTTPError as e:
        click.echo(f"error: {url} answered {e.code}: {e.read().decode(errors='replace')[:300]}", err=True)
    except urllib.error.URLError as e:
        click.echo(f"error: cannot reach {url} ({e.reason}); start it with `valuecsv-ray serve "
                   "--registry DIR`, or score locally with --registry DIR", err=True)
    sys.exit(1)


def format_scores(texts: list[str], results: list[dict]) -> str:
    """Value x text table of probabilities; '*' marks values labelled present."""
    from valuecsv_ray.taxonomy import VALUES

    header = ["value", "level"] + [f"[{i}] {t[:12]}" for i, t in enumerate(texts)]
    rows = [header]
    for v in VALUES:
        if v.id not in results[0]["probs"]:
            continue
        rows.append([f"{v.en} {v.zh}", v.level.value] + [
            f"{r['probs'][v.id]:.3f}{'*' if r['labels'][v.id] else ' '}" for r in results])
    widths = [max(_width(row[c]) for row in rows) for c in range(len(header))]
    lines = ["  ".join(cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True))
             for row in rows]
    return "\n".join(lines + ["* = above the evaluator's threshold"])


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(2 if "\u2e80" <= ch <= "\uffef" else 1 for ch in text)


def _register_audit_commands() -> None:
    from valuecsv_ray.cli.audit import audit_cmd, report_cmd

    main.add_command(audit_cmd)
    main.add_command(report_cmd)


_register_audit_commands()
