"""The `profiles` command of `valuecsv-ray` (registered on the main group in cli/__init__.py).

    valuecsv-ray profiles                              # the presets of the default taxonomy
    valuecsv-ray profiles --taxonomy my_values.yaml
    valuecsv-ray profiles --registry runs/quickstart   # those of the registry's values

Every name it lists can be given to `leaderboard --profile` and `eval --profile`.
"""

from __future__ import annotations

import click

from valuecsv_ray.cli.options import Command


@click.command("profiles", cls=Command)
@click.option("--taxonomy", help="a built-in taxonomy's name or a taxonomy YAML file (default: the "
                                 "Core Socialist Values)")
@click.option("--registry", help="a registry folder (or its s3://, gs:// URI): the presets of its values")
def profiles_cmd(taxonomy: str | None, registry: str | None) -> None:
    """List the weight-profile presets: name, where it comes from, its weights. Presets are made from
    the taxonomy (uniform, one per group) or ship as files beside it
    (valuecsv_ray/resources/profiles/<taxonomy>/<preset>.yaml)."""
    from valuecsv_ray.leaderboard.profiles import origin, presets, presets_dir, weights_summary
    from valuecsv_ray.taxonomy import load_taxonomy
    from valuecsv_ray.text_table import text_table

    if taxonomy and registry:
        raise click.UsageError("give --taxonomy or --registry, not both")
    if registry:
        from valuecsv_ray.registry.manifest import load_registry

        tax = load_registry(registry).taxonomy
    else:
        tax = load_taxonomy(taxonomy)
    rows = [[p.name, origin(p, tax), weights_summary(p, tax)] for p in presets(tax).values()]
    click.echo(f"weight-profile presets of taxonomy {tax.name} ({len(tax.ids)} values)\n")
    click.echo(text_table(["preset", "from", "weights"], rows))
    click.echo(f"\npreset files: {presets_dir(tax.name)}; or give --profile a YAML file of your own")
