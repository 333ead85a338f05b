"""The leaderboard commands of `valuecsv-ray` (registered on the main group in cli/__init__.py).

    valuecsv-ray leaderboard eval/run1 --profile uniform --profile personal --profile my_weights.yaml
    valuecsv-ray compare eval/run1 qwen-7b glm-4 --out qwen-vs-glm.csv

Both take an evaluation folder (EVAL/audit/...), an audit output folder or its stats/ folder.
"""

from __future__ import annotations

from pathlib import Path

import click

from valuecsv_ray.cli.options import Command
from valuecsv_ray.resampling import N_BOOT


@click.command("leaderboard", cls=Command)
@click.argument("path", metavar="STATS_OR_EVAL_DIR", type=click.Path(exists=True, file_okay=False))
@click.option("--profile", "profiles", multiple=True, default=("uniform",), show_default=True,
              help="weight profile: a preset (uniform, a group of the taxonomy, or a preset file shipped "
                   "beside it; `valuecsv-ray profiles` lists them) or a YAML file; repeatable")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="output folder (default: EVAL/leaderboard, or leaderboard/ inside the audit folder)")
@click.option("--n-boot", default=N_BOOT, show_default=True, type=click.IntRange(min=1),
              help="bootstrap resamples of the prompts for the 95% intervals")
@click.option("--seed", default=0, show_default=True, type=int, help="seed of the bootstrap resamples")
@click.option("--reference", "references", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="a YAML or JSON file of value id: number (e.g. a culture's value ranking) to correlate "
                   "each model with, beside the profiles; repeatable")
def leaderboard_cmd(path: str, profiles: tuple[str, ...], out_dir: str | None, n_boot: int,
                    seed: int, references: tuple[str, ...]) -> None:
    """Rank the models of an audit per weight profile: 0-100 scores with 95% bootstrap intervals, on the
    prompts every model answered; and each model's profile similarity: Spearman's rho of its per-value
    scores with each profile's weights and each --reference. STATS_OR_EVAL_DIR is an evaluation folder,
    an audit output folder (with scores/ and stats/) or its stats/ folder."""
    from valuecsv_ray.eval.layout import audit_source, leaderboard_dir_for
    from valuecsv_ray.leaderboard import (
        format_leaderboard,
        leaderboard,
        load_profiles,
        read_audit_scores,
        write_leaderboard,
    )
    from valuecsv_ray.leaderboard.similarity import (
        format_similarity,
        load_reference,
        similarity,
        write_similarity,
    )

    scores, taxonomy, where = read_audit_scores(audit_source(Path(path)))
    chosen = load_profiles(profiles, taxonomy)
    vectors = [load_reference(Path(r), taxonomy) for r in references]
    board = leaderboard(scores, taxonomy, chosen, n_boot=n_boot, seed=seed)
    written = write_leaderboard(board, Path(out_dir) if out_dir else leaderboard_dir_for(where.root))
    similar = similarity(scores, taxonomy, chosen, vectors)
    folder = written["parquet"].parent
    files = [*written.values(), *map(Path, write_similarity(similar, folder).values())]
    click.echo(format_leaderboard(board))
    click.echo("\n" + format_similarity(similar))
    click.echo(f"\nleaderboard in {folder} ({', '.join(p.name for p in files)})")


@click.command("compare", cls=Command)
@click.argument("path", metavar="STATS_OR_EVAL_DIR", type=click.Path(exists=True, file_okay=False))
@click.argument("model_a")
@click.argument("model_b")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="also write the table to this CSV")
@click.option("--n-boot", default=N_BOOT, show_default=True, type=click.IntRange(min=1),
              help="paired bootstrap resamples of the common prompts")
@click.option("--seed", default=0, show_default=True, type=int, help="seed of the bootstrap resamples")
def compare_cmd(path: str, model_a: str, model_b: str, out_file: str | None, n_boot: int, seed: int) -> None:
    """Per value, group and overall: MODEL_A - MODEL_B in mean probability on their common prompts, with a
    paired bootstrap interval and Holm-corrected p-values."""
    from valuecsv_ray.eval.layout import audit_source
    from valuecsv_ray.leaderboard import compare, format_compare, read_audit_scores

    scores, taxonomy, _ = read_audit_scores(audit_source(Path(path)))
    table = compare(scores, taxonomy, model_a, model_b, n_boot=n_boot, seed=seed)
    if out_file:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_file, index=False)
    click.echo(format_compare(table))
    if out_file:
        click.echo(f"\ntable in {out_file}")
