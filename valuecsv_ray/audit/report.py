"""The audit report: a model x value heatmap, per-model profiles, and Markdown + HTML tables.

    from valuecsv_ray.audit.report import write_report
    paths = write_report(Path("out/stats"))  # heatmap.png, profiles.png, report.md, report.html

Reads what `valuecsv_ray.audit.stats.write_stats` wrote, the taxonomy included: columns, labels,
groups and the title are the taxonomy's. Values are labelled "English 中文" where an installed font
has the Chinese glyphs, else in English (fonts, figures and rendering: valuecsv_ray.report_kit).
Sections written downstream (the leaderboard's) are passed in by the caller, as `sections`
(valuecsv_ray.eval.report.write_eval_report). No torch, no Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuecsv_ray.audit.stats import StatsError, load_stats
from valuecsv_ray.report_kit import (
    BASE_FONT,
    Block,
    cjk_family,
    drawable,
    figure,
    render_html,
    render_markdown,
)
from valuecsv_ray.storage import join, local_folder, located
from valuecsv_ray.taxonomy import Taxonomy

REPORT_FILES = {"heatmap": "heatmap.png", "profiles": "profiles.png", "markdown": "report.md",
                "html": "report.html"}  # write_report's keys and file names
# A section after the audit's own: (local output folder, taxonomy) -> its blocks and the files it wrote
Section = Callable[[Path, Taxonomy], tuple[list[Block], dict[str, Path]]]


def _pivot(stats: pd.DataFrame, scope: str, keys: list[str], column: str = "mean") -> pd.DataFrame:
    """Models (in stats order) x keys table of one statistic of one scope."""
    part = stats[stats["scope"] == scope]
    table = part.pivot(index="model", columns="key", values=column)
    table = table.reindex(index=list(dict.fromkeys(part["model"])), columns=keys)
    table.columns.name = None
    return table


def model_value_table(stats: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """The LLM x value table: models as rows, value ids (taxonomy order) as columns, mean probability."""
    return _pivot(stats, "value", list(taxonomy.ids))


def coverage_statement(coverage: dict[str, Any]) -> str:
    """One paragraph: the models with their rows and prompts, and whether and why the comparison
    was restricted to the prompts every model answered."""
    models = coverage["models"]
    listed = "; ".join(
        f"{name} ({c['rows']} rows, {_count(c['prompts'])} prompts, {c['rows_used']} rows used)"
        for name, c in models.items()
    )
    restricted = "Restricted" if coverage["restricted"] else "Not restricted"
    return (
        f"{len(models)} model(s) audited: {listed}. {restricted} to common prompts: {coverage['reason']} "
        f"({coverage['rows_used']} of {coverage['rows']} rows used)."
    )


def _count(n: int | None) -> str:
    return "no" if n is None else str(n)


# --- figures ---------------------------------------------------------------------------------


def _families(taxonomy: Taxonomy) -> tuple[tuple[str, ...], bool]:
    """Font families for figures, and whether they draw the values' Chinese names."""
    needed = "".join(label.zh for label in taxonomy.labels)
    cjk = cjk_family(needed) if needed else None
    return ((cjk, BASE_FONT) if cjk else (BASE_FONT,)), cjk is not None


def _value_labels(taxonomy: Taxonomy) -> list[str]:
    """Axis labels of the values: "English 中文" where a font draws the Chinese, else English."""
    families, chinese = _families(taxonomy)
    return [drawable(label.name if chinese else label.en, families) for label in taxonomy.labels]


def _group_runs(taxonomy: Taxonomy) -> tuple[list[float], list[str]]:
    """Where the value axis passes from one group to the next, and the groups from left to right."""
    groups = [label.group for label in taxonomy.labels]
    starts = [i for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]]
    return [i - 0.5 for i in starts[1:]], [groups[i] for i in starts]


def _plot_heatmap(table: pd.DataFrame, taxonomy: Taxonomy, path: Path) -> None:
    """Model x value heatmap of mean probability, each cell annotated."""
    from matplotlib import rc_context

    families, _ = _families(taxonomy)
    values = table.to_numpy(dtype=float)
    with rc_context({"font.family": list(families)}):
        fig = figure((0.9 * len(taxonomy.labels) + 3.0, 0.5 * len(table) + 2.6))
        ax = fig.add_subplot()
        image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(taxonomy.labels)), _value_labels(taxonomy), rotation=40, ha="right")
        ax.set_yticks(range(len(table)), [drawable(str(m), families) for m in table.index])
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if v > 0.6 else "white")
        fig.colorbar(image, ax=ax, label="mean P(value expressed)")
        ax.set_title("Mean probability per model and value")
        fig.savefig(path, dpi=110)


def _plot_profiles(stats: pd.DataFrame, taxonomy: Taxonomy, path: Path) -> None:
    """Grouped bars: mean probability per value with its 95% CI, one series per model; dotted
    lines between the taxonomy's groups."""
    from matplotlib import rc_context

    families, _ = _families(taxonomy)
    keys = list(taxonomy.ids)
    boundaries, groups = _group_runs(taxonomy)
    means, lows, highs = (_pivot(stats, "value", keys, c) for c in ("mean", "mean_lo", "mean_hi"))
    width = 0.8 / len(means)
    with rc_context({"font.family": list(families)}):
        fig = figure((min(18.0, max(10.0, 0.2 * len(keys) * len(means) + 5.0)), 5.0))
        ax = fig.add_subplot()
        for k, model in enumerate(means.index):
            x = np.arange(len(keys)) + (k - (len(means) - 1) / 2) * width
            m = means.loc[model].to_numpy(float)
            err = [m - lows.loc[model].to_numpy(float), highs.loc[model].to_numpy(float) - m]
            ax.bar(x, m, width, yerr=err, capsize=2, label=drawable(str(model), families))
        for boundary in boundaries:
            ax.axvline(boundary, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xticks(range(len(keys)), _value_labels(taxonomy), rotation=40, ha="right")
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("mean P(value expressed), 95% CI")
        by_group = f" ({' | '.join(groups)})" if len(groups) > 1 else ""
        ax.set_title(drawable(f"Value profile per model{by_group}", families))
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model")
        fig.savefig(path, dpi=110)


# --- the document ----------------------------------------------------------------------------


def _interval(mean: float, lo: float, hi: float) -> str:
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _group_prose(taxonomy: Taxonomy) -> str:
    """How a group's score is made, and which values each group holds."""
    kind = taxonomy.group_kind
    sizes = {len(taxonomy.members(g)) for g in taxonomy.groups}
    count = f"{sizes.pop()} " if len(sizes) == 1 else ""
    members = "; ".join(f"{g}: {', '.join(v.en for v in taxonomy.members(g))}" for g in taxonomy.groups)
    return (f"A text's {kind} score is the mean of the {kind}'s {count}probabilities; it counts positive "
            f"if any of the {kind}'s labels is positive. Values per {kind}: {members}.")


def _blocks(stats: pd.DataFrame, coverage: dict[str, Any], taxonomy: Taxonomy,
            images: dict[str, str]) -> list[Block]:
    """The report as a list of blocks, rendered below to Markdown and HTML."""
    values = model_value_table(stats, taxonomy)
    value_rows = [[m, *(f"{x:.3f}" for x in row)] for m, row in values.iterrows()]
    groups = list(taxonomy.groups)
    group_rows = [
        [model, *(_interval(*rows.loc[key, ["mean", "mean_lo", "mean_hi"]]) for key in groups)]
        for model, rows in stats[stats["scope"] == "group"].set_index("key").groupby("model", sort=False)
    ]
    overall = stats[stats["scope"] == "overall"]
    overall_rows = [
        [r.model, str(r.n), _interval(r.mean, r.mean_lo, r.mean_hi), f"{r.std:.3f}",
         f"{r.p10:.3f} / {r.p50:.3f} / {r.p90:.3f}", _interval(r.pos_rate, r.pos_lo, r.pos_hi)]
        for r in overall.itertuples()
    ]
    cov_rows = [[m, str(c["rows"]), _count(c["prompts"]), str(c["rows_used"])]
                for m, c in coverage["models"].items()]
    n = len(taxonomy.labels)
    return [
        ("h1", f"{taxonomy.title} audit"),
        ("p", coverage_statement(coverage)),
        ("table", ["model", "rows", "prompts", "rows used"], cov_rows),
        ("h2", "Mean probability per model and value"),
        ("img", images["heatmap"], "model x value heatmap of mean probability"),
        ("table", ["model", *(label.name for label in taxonomy.labels)], value_rows),
        ("img", images["profiles"], "per-model value profile with 95% CIs"),
        ("h2", f"Per {taxonomy.group_kind}: mean probability [95% CI]"),
        ("p", _group_prose(taxonomy)),
        ("table", ["model", *groups], group_rows),
        ("h2", f"Overall: all {n} values"),
        ("p", f"A text's overall score is the mean of its {n} probabilities; it counts positive if "
              "any label is. CI of the mean: mean ± 1.96·std/√n; positive rate: 95% Wilson interval."),
        ("table", ["model", "n", "mean [95% CI]", "std", "p10 / p50 / p90", "positive rate [95% Wilson]"],
         overall_rows),
    ]


def write_report(stats_dir: str | Path, out_dir: str | Path | None = None,
                 sections: Sequence[Section] = ()) -> dict[str, Path | str]:
    """Write heatmap.png, profiles.png, report.md and report.html (default: into `stats_dir`; a
    path or a URI), with each of `sections` appended in order, and the files they write."""
    stats, coverage, taxonomy = load_stats(stats_dir)
    if stats.empty:
        raise StatsError(f"{stats_dir}: stats.parquet has no rows; nothing to report")
    target = str(out_dir if out_dir is not None else stats_dir)
    with local_folder(target) as folder:
        paths = {k: folder / name for k, name in REPORT_FILES.items()}
        _plot_heatmap(model_value_table(stats, taxonomy), taxonomy, paths["heatmap"])
        _plot_profiles(stats, taxonomy, paths["profiles"])
        blocks = _blocks(stats, coverage, taxonomy, REPORT_FILES)
        for section in sections:
            more, files = section(folder, taxonomy)
            blocks, paths = blocks + more, paths | files
        paths["markdown"].write_text(render_markdown(blocks), encoding="utf-8")
        paths["html"].write_text(render_html(blocks, f"{taxonomy.title} audit"), encoding="utf-8")
    return {k: located(join(target, p.name)) for k, p in paths.items()}
