"""The `rating` commands: CValues human evaluation as a round trip (registered on the main group).

    valuecsv-ray rating export eval/collect/responses --out rate/sheet.xlsx --raters 2 --overlap 0.2
    valuecsv-ray rating import rate/sheet.rater1.xlsx rate/sheet.rater2.xlsx --key rate/sheet.key.json \\
        --out rate/ratings.parquet
    valuecsv-ray rating summary rate/ratings.parquet
"""

from __future__ import annotations

from pathlib import Path

import click

from valuecsv_ray.cli.options import Group

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)



@click.group("rating", cls=Group)
def rating() -> None:
    """Rate CValues answers by hand: blinded xlsx sheets out, filled sheets in, summary."""


@rating.command("export")
@click.argument("responses", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the sheet, e.g. rate/sheet.xlsx; several raters get sheet.rater1.xlsx, ... and the "
                   "key goes to sheet.key.json (keep it from the raters)")
@click.option("--raters", default=1, show_default=True, type=click.IntRange(min=1), help="one file per rater")
@click.option("--overlap", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="share of answers given to more than one rater, for agreement")
@click.option("--overlap-raters", default=2, show_default=True, type=click.IntRange(min=2),
              help="how many raters get each overlapping answer")
@click.option("--seed", default=0, show_default=True, type=int, help="model codes and row order")
@click.option("--suite", default="cvalues-responsibility", show_default=True,
              help="the suite whose answers are rated")
def export_cmd(responses: Path, out: Path, raters: int, overlap: float, overlap_raters: int, seed: int,
               suite: str) -> None:
    """Write blinded rating sheets for the answers in RESPONSES (a Parquet file or a folder of them)."""
    from valuecsv_ray.cvalues.human import export_rating_sheet, read_responses

    result = export_rating_sheet(read_responses(responses), out, raters=raters, seed=seed,
                                 overlap=overlap, overlap_raters=overlap_raters, suite=suite)
    left_out = ", ".join(f"{reason}: {n}" for reason, n in result.left_out.items()) or "none"
    click.echo(f"{result.n_answers} answers to rate, {result.n_overlap} of them by more than one rater; "
               f"left out: {left_out}")
    if result.n_naming:
        click.echo(f"warning: {result.n_naming} answer(s) spell a model's name in the prompt or response; "
                   "blinding cannot hide that")
    if result.n_truncated:
        click.echo(f"{result.n_truncated} cell(s) cut to Excel's 32,767 characters")
    for sheet in result.sheets:
        click.echo(f"sheet: {sheet}")
    click.echo(f"key (keep it from the raters): {result.key_path}")


@rating.command("import")
@click.argument("filled", nargs=-1, required=True, type=_FILE)
@click.option("--key", "key", required=True, type=_FILE,
              help="the sheet.key.json written by `rating export`")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the rating table to write, e.g. ratings.parquet")
def import_cmd(filled: tuple[Path, ...], key: Path, out: Path) -> None:
    """Read FILLED rating sheets, check every cell, unblind them and write one rating table."""
    from valuecsv_ray.cvalues.ratings import import_ratings, write_ratings

    ratings = import_ratings(list(filled), key)
    write_ratings(ratings, out)
    for rater, rows in ratings.groupby("rater", sort=True):
        unrated = int(rows["status"].eq("unrated").sum())
        click.echo(f"rater {rater}: {len(rows) - unrated} rated, {unrated} unrated ({rows['file'].iloc[0]})")
    click.echo(f"rating table: {out}")


@rating.command("summary")
@click.argument("ratings_path", metavar="RATINGS", type=_FILE)
@click.option("--level", default="ordinal", show_default=True,
              type=click.Choice(["ordinal", "interval", "nominal"]),
              help="Krippendorff's alpha metric")
def summary_cmd(ratings_path: Path, level: str) -> None:
    """Print mean rating per model and per (model, domain), with rater agreement, per source."""
    from valuecsv_ray.cvalues.agreement import aggregate_ratings, format_summary
    from valuecsv_ray.cvalues.ratings import read_ratings

    summary = aggregate_ratings(read_ratings(ratings_path), level=level)
    click.echo(format_summary(summary))
