"""The `valuecsv-ray distill` command (registered on the main group in cli/__init__.py).

    valuecsv-ray distill answers.jsonl --registry runs/valuecsv5000-tiny --config configs/distill/tiny.yaml
    valuecsv-ray score --registry runs/valuecsv5000-tiny --evaluators student "一段文本"
"""

from __future__ import annotations

import click

from valuecsv_ray.cli.options import Command, given, options_from
from valuecsv_ray.config import ConfigError, DistillConfig, load_distill_config
from valuecsv_ray.settings import parse_overrides


@click.command("distill", cls=Command)
@click.argument("corpus", nargs=-1)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of distill settings (see configs/distill/)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="any distill setting")
@options_from(DistillConfig)
def distill_cmd(corpus: tuple[str, ...], config_path: str | None, overrides: tuple[str, ...],
                **flags) -> None:
    """Distil a registry's evaluators into one student (one encoder, a head per value) on the
    registry's annotated texts and CORPUS (files, folders, globs of unlabeled text), with Ray Train;
    write it to REGISTRY/students/NAME and print its agreement with the ensemble."""
    from valuecsv_ray.registry.manifest import load_registry
    from valuecsv_ray.registry.students import student_summary
    from valuecsv_ray.train.distill import distill

    try:
        settings = {**given(flags), **parse_overrides(overrides)}
        if corpus:
            settings["corpus"] = list(corpus)
        cfg = load_distill_config(config_path, settings)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    student = load_registry(distill(cfg))
    click.echo(f"\nstudent {student.registry_id} at {student.path}")
    click.echo(format_student_table(student.manifest))
    click.echo(student_summary(student.manifest))


def format_student_table(manifest: dict) -> str:
    """Per value: the student's and the ensemble's gold F1 and AUC, agreement and mean |dp| on
    held-out text, the student's threshold and temperature."""
    lines = [f"{'value':<14}{'F1':>7}{'F1 ens':>8}{'AUC':>7}{'AUC ens':>8}{'agree':>7}{'|dp|':>7}"
             f"{'thr':>7}{'T':>7}"]
    for value_id, ev in manifest["evaluators"].items():
        m, e, a = ev["metrics"], ev["ensemble_metrics"], ev["agreement"]
        lines.append(f"{value_id:<14}{m['f1']:>7.3f}{e['f1']:>8.3f}{_num(m['roc_auc']):>7}"
                     f"{_num(e['roc_auc']):>8}{a['decision']:>7.3f}{a['mean_abs_dp']:>7.3f}"
                     f"{ev['threshold']:>7.3f}{ev['temperature']:>7.2f}")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
