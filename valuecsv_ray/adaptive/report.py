"""The adaptive run's report section: abilities with intervals, item difficulties per round, test
information curves, and the ranking against a static leaderboard.

    files = write_adaptive_report(Path("adaptive/run1"))              # OUT/report/adaptive.md, .html, PNGs
    blocks, figures = adaptive_section(run, None, out_dir, taxonomy)  # a section of another report

The static ranking is, per value, a leaderboard (`valuecsv_ray.leaderboard`) of the first round's
audit (round 0: every model answered every seed item, the static evaluation the test replaces),
with a profile weighing that value alone; or the board of `--leaderboard DIR` (its first profile,
against every value). Agreement is Spearman's rho over the models. No torch, no Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import spearmanr

from valuecsv_ray.adaptive import bank as bank_
from valuecsv_ray.report_kit import Block, figure, render_html, render_markdown
from valuecsv_ray.taxonomy import Taxonomy

REPORT_DIR = "report"
FIGURES = {"abilities": "abilities.png", "difficulties": "difficulties.png", "information": "information.png"}
_GRID = np.linspace(-4, 4, 161)


def _rounds(run: Path) -> list[Path]:
    folders = sorted(p for p in Path(run).glob("round-*") if (p / "done.json").is_file())
    if not folders:
        raise FileNotFoundError(f"{run}: no finished round (round-NN/done.json); "
                                "run `valuecsv-ray adaptive run`")
    return folders


def _abilities(folders: list[Path]) -> pd.DataFrame:
    frames = [pd.read_parquet(f / "abilities.parquet").assign(round=int(f.name[6:])) for f in folders]
    return pd.concat(frames, ignore_index=True)


def static_ranking(run: Path, values: list[str], leaderboard_dir: Path | None = None) -> pd.DataFrame:
    """model, value, static_score, static_rank: per value from the first round's audit (round 0: every
    seed item), or the first profile of a given leaderboard for every value."""
    from valuecsv_ray.leaderboard import leaderboard, load_leaderboard, read_audit_scores
    from valuecsv_ray.leaderboard.profiles import Profile

    if leaderboard_dir is not None:
        board, _ = load_leaderboard(leaderboard_dir)
        board = board[board["profile"] == board["profile"].iloc[0]]
        return pd.concat([pd.DataFrame({"model": board["model"], "value": v, "static_score": board["score"],
                                        "static_rank": board["rank"]}) for v in values], ignore_index=True)
    scores, taxonomy, _ = read_audit_scores(_rounds(run)[0] / "audit")
    profiles = [Profile(v, {u: float(u == v) for u in taxonomy.ids}, f"{v} alone") for v in values]
    board = leaderboard(scores, taxonomy, profiles, n_boot=200)
    return board.rename(columns={"profile": "value", "score": "static_score", "rank": "static_rank"})[
        ["model", "value", "static_score", "static_rank"]]


def _information(bank: bank_.Bank, value: str) -> np.ndarray:
    params = bank_.item_parameters(bank, value)
    a, b = params["a"].to_numpy(dtype=float), params["b"].to_numpy(dtype=float)
    p = expit(a[None, :] * (_GRID[:, None] - b[None, :]))
    return (a[None, :] ** 2 * p * (1 - p)).sum(axis=1)


def _plot_abilities(abilities: pd.DataFrame, values: list[str], path: Path) -> None:
    fig = figure((4.5 * len(values), 3.2))
    for k, value in enumerate(values):
        ax = fig.add_subplot(1, len(values), k + 1)
        for model, part in abilities[abilities["value"] == value].groupby("model"):
            ax.errorbar(part["round"], part["theta"], yerr=1.96 * part["se"], capsize=3, marker="o",
                        label=model)
        ax.set(title=value, xlabel="round", ylabel="ability (theta)", xticks=sorted(set(abilities["round"])))
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def _plot_difficulties(asked: pd.DataFrame, values: list[str], path: Path) -> None:
    fig = figure((4.5 * len(values), 3.2))
    for k, value in enumerate(values):
        ax = fig.add_subplot(1, len(values), k + 1)
        part = asked[(asked["value"] == value) & asked["b"].notna()]
        bins = np.linspace(min(-3.0, part["b"].min()), max(3.0, part["b"].max()), 25) if len(part) else 10
        for round_, items in part.groupby("round"):
            ax.hist(items["b"], bins=bins, histtype="step", linewidth=1.5, label=f"round {round_}")
        ax.set(title=value, xlabel="difficulty b (final calibration)", ylabel="items asked")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def _plot_information(curves: dict[tuple[str, int], np.ndarray], values: list[str], path: Path) -> None:
    fig = figure((4.5 * len(values), 3.2))
    for k, value in enumerate(values):
        ax = fig.add_subplot(1, len(values), k + 1)
        for (v, round_), curve in curves.items():
            if v == value:
                ax.plot(_GRID, curve, label=f"after round {round_}")
        ax.set(title=value, xlabel="ability theta", ylabel="test information")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def adaptive_section(run: Path, leaderboard_dir: Path | None, out_dir: Path,
                     taxonomy: Taxonomy | None = None) -> tuple[list[Block], dict[str, Path]]:
    """The report blocks of an adaptive run and its figures (written into `out_dir`)."""
    folders = _rounds(run)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [json.loads((f / "done.json").read_text(encoding="utf-8")) for f in folders]
    abilities = _abilities(folders)
    values = list(dict.fromkeys(abilities["value"]))
    final = bank_.read_bank(folders[-1] / "bank.parquet")
    long = bank_.calibration_long(final)[["item_id", "value", "b"]]
    asked = pd.concat([pd.read_parquet(f / "outcomes.parquet")[["item_id", "value"]].drop_duplicates()
                       .assign(round=int(f.name[6:])) for f in folders], ignore_index=True)
    asked = asked.merge(long, on=["item_id", "value"], how="left")
    curves = {(v, int(f.name[6:])): _information(bank_.read_bank(f / "bank.parquet"), v)
              for f in folders for v in values}
    paths = {k: out_dir / name for k, name in FIGURES.items()}
    _plot_abilities(abilities, values, paths["abilities"])
    _plot_difficulties(asked, values, paths["difficulties"])
    _plot_information(curves, values, paths["information"])

    blocks: list[Block] = [("h2", "Adaptive test"), ("p", (
        f"{len(folders)} rounds; abilities from a joint 2PL MAP fit over every answer so far (priors: theta "
        "N(0,1), log a N(0,0.5²), b N(0,2²)); interval: theta ± 1.96 SE. An answer conforms when the "
        "registry's probability for the value is at or above its threshold."))]
    blocks.append(("table", ["round", "items asked", "answers", "candidates", "admitted", "rejected (checks)",
                             "rejected (fit)"],
                   [[s["round"], s["items_asked"], s["answers"], s["candidates"], s["admitted"],
                     s["rejected_by_checks"], s["rejected_by_fit"]] for s in summaries]))
    last = abilities[abilities["round"] == abilities["round"].max()]
    static = static_ranking(Path(run), values, leaderboard_dir)
    joined = last.merge(static, on=["model", "value"], how="left")
    source = (f"the first profile of {leaderboard_dir}" if leaderboard_dir is not None else
              f"the leaderboard of {folders[0].name}'s audit, each value alone (mean P(value) over the "
              "prompts every model answered)")
    blocks += [("h3", "Abilities"), ("img", FIGURES["abilities"], "ability per round with 95% intervals"),
               ("p", f"Static ranking: {source}; rho is Spearman's over the models.")]
    for value, part in joined.groupby("value", sort=False):
        part = part.sort_values("theta", ascending=False)
        rows = [[r.model, f"{r.theta:+.2f}", f"[{r.lo:+.2f}, {r.hi:+.2f}]", f"{r.se:.2f}",
                 int(r.n_responses), "" if pd.isna(r.static_rank) else int(r.static_rank),
                 "" if pd.isna(r.static_score) else f"{r.static_score:.1f}"] for r in part.itertuples()]
        comparable = part["static_rank"].notna().all() and len(part) > 2
        rho = spearmanr(part["theta"], -part["static_rank"]).statistic if comparable else float("nan")
        blocks += [("h3", f"{value}: ranking against the static leaderboard (Spearman rho {rho:.2f})"),
                   ("table", ["model", "theta", "95% interval", "SE", "answers", "static rank",
                              "static score"], rows)]
    blocks += [("h3", "Item difficulties per round"), ("img", FIGURES["difficulties"], "difficulties asked"),
               ("h3", "Test information"), ("img", FIGURES["information"], "test information curves")]
    return blocks, paths


def write_adaptive_report(run: Path, leaderboard_dir: Path | None = None,
                          out_dir: Path | None = None) -> dict[str, Path]:
    """RUN/report/adaptive.md and adaptive.html with the figures; returns the files written."""
    out_dir = Path(out_dir or Path(run) / REPORT_DIR)
    blocks, paths = adaptive_section(run, leaderboard_dir, out_dir)
    blocks = [("h1", f"Adaptive value test: {Path(run).name}"), *blocks]
    (out_dir / "adaptive.md").write_text(render_markdown(blocks), encoding="utf-8")
    (out_dir / "adaptive.html").write_text(render_html(blocks, "Adaptive value test"), encoding="utf-8")
    return {**paths, "md": out_dir / "adaptive.md", "html": out_dir / "adaptive.html"}
