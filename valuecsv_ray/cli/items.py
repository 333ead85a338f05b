"""The `items` commands of `valuecsv-ray`: the item bank of the adaptive test (registered on the main
group in cli/__init__.py).

    valuecsv-ray items init --suite quest100 --data-dir data --out eval/bank.parquet
    valuecsv-ray items init --suite my_prompts.csv --registry runs/valuecsv --values IDS --out bank.parquet
    valuecsv-ray items show eval/bank.parquet
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from valuecsv_ray.cli.options import Group
from valuecsv_ray.tables import SUPPORTED

SHOWN_SKIPPED = 20  # skipped rows printed; all of them go to the CSV beside the bank


@click.group("items", cls=Group)
def items() -> None:
    """The item bank of the adaptive test: build it from a prompt suite, show what it holds."""


@items.command("init")
@click.option("--suite", "spec", required=True, metavar="SPEC",
              help="a built-in suite (quest100, cvalues-responsibility), NAME=PATH, or a table file "
                   f"({SUPPORTED}) with an id and a prompt column")
@click.option("--data-dir", type=click.Path(file_okay=False), default="data", show_default=True,
              help="folder holding the built-in suites' files")
@click.option("--taxonomy", default=None,
              help="the value set: a built-in taxonomy name or a taxonomy YAML file [default: the Core "
                   "Socialist Values]")
@click.option("--registry", help="a registry folder (or its s3://, gs:// URI): the taxonomy of its values")
@click.option("--values", default=None, metavar="IDS",
              help="comma list of value ids every item targets (default: all values of the taxonomy)")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="the bank to write (.parquet)")
@click.option("--force", is_flag=True, help="replace an existing bank (its calibrations are lost)")
def init_cmd(spec: str, data_dir: str, taxonomy: str | None, registry: str | None, values: str | None,
             out: str, force: bool) -> None:
    """Build an item bank from a prompt suite: one active, uncalibrated item per distinct prompt."""
    from valuecsv_ray.adaptive.bank import build_bank, write_bank
    from valuecsv_ray.taxonomy import load_taxonomy

    path = Path(out)
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; give --force to replace it (its calibrations are lost)")
    if taxonomy and registry:
        raise click.UsageError("give --taxonomy or --registry, not both")
    if registry:
        from valuecsv_ray.registry.manifest import load_registry

        tax = load_registry(registry).taxonomy
    else:
        tax = load_taxonomy(taxonomy)
    try:
        targets = [label.id for label in tax.parse(values)] if values else []
    except KeyError as e:
        raise click.BadParameter(e.args[0], param_hint="--values") from e
    bank, skipped = build_bank(spec, tax, data_dir=Path(data_dir), values=targets)
    write_bank(bank, path)
    targeted = ", ".join(targets) if targets else f"all {len(tax.ids)} values of {tax.name}"
    click.echo(f"{path}: {len(bank.items)} items from {bank.items['source'].iloc[0]} "
               f"(origin {bank.items['origin'].iloc[0]}), targeting {targeted}")
    click.echo(f"skipped {len(skipped)} rows")
    for where, reason in skipped[:SHOWN_SKIPPED]:
        click.echo(f"  {where}: {reason}")
    if skipped:
        listing = path.with_name(path.stem + ".skipped.csv")
        pd.DataFrame(skipped, columns=["where", "reason"]).to_csv(listing, index=False)
        more = f" ({len(skipped) - SHOWN_SKIPPED} more)" if len(skipped) > SHOWN_SKIPPED else ""
        click.echo(f"every skipped row and its reason{more} in {listing}")


@items.command("show")
@click.argument("bank_path", metavar="BANK", type=click.Path(exists=True, dir_okay=False))
def show_cmd(bank_path: str) -> None:
    """Count a bank's items by origin and status, and its calibrated items per value."""
    from valuecsv_ray.adaptive.bank import calibration_long, read_bank

    bank = read_bank(Path(bank_path))
    click.echo(f"{bank_path}: {len(bank.items)} items, taxonomy {bank.taxonomy.name}")
    counts = bank.items.groupby(["origin", "status"]).size()
    for (origin, status), n in counts.items():
        click.echo(f"  {origin:<10} {status:<9} {n}")
    long = calibration_long(bank)
    for value in bank.taxonomy.ids:
        part = long[long["value"] == value]
        if len(part):
            usable = int((part["retired"].fillna("") == "").sum())
            click.echo(f"  {value}: {len(part)} calibrated, {usable} not retired")
