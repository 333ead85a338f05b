"""How many items the adaptive test needs to rank real LLMs as their full bank does, against random items.

    valuecsv-ray audit ../shared/data/quest100.xlsx --wide --registry runs/valuecsv --out audit/quest100
    python bench/adaptive_real.py audit/quest100                  # 200 random draws, leave-one-model-out too
    python bench/adaptive_real.py audit/quest100 --draws 50 --no-lomo --per-value

The real-data half of bench/adaptive_items.py. Outcomes are the audit's own decisions, as the
adaptive loop reads them (adaptive/outcomes.py): an answer conforms on a value when the registry's
probability is at or above its threshold (the scores' y_<value> columns; several rows of one
(model, prompt) pooled, conforming when at least half do). Items are the prompts every model
answered. Per value (values where every answer conforms or none does, or where every model gave
the same answers, are skipped and counted), the 2PL is calibrated jointly on every model x item
(`irt.fit_2pl`), and each model's ability from all active items (EAP under the calibrated
parameters) is the full-bank ranking. For k items per model, the adaptive test (`cat.run_cat`:
from the prior, a batch by Fisher information at the current estimate; answers are looked up,
since every model answered every item) and random subsets of k active items per model are
scored by the Spearman correlation of their abilities with that ranking; a ranking with no
spread (every model the same estimate) counts as 0. The table gives, per k, the mean over values
and the share of values reaching 0.9 (for random: whose mean over draws does), and below it the
fewest k whose mean reaches 0.9.

In-sample, the items are calibrated on the very models that are tested. `--lomo` (the default)
also runs each model's tests under items calibrated without it (on the other models only) and
ranks those estimates against the same full-bank ranking. Reads Parquet; no Ray, no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.stats import rankdata, spearmanr

from valuecsv_ray.adaptive.cat import StopRule, run_cat
from valuecsv_ray.adaptive.irt import estimate_ability, fit_2pl
from valuecsv_ray.audit.schema import label_column
from valuecsv_ray.audit.stats import read_taxonomy

BUDGETS = (5, 10, 15, 20, 30, 40)


def read_matrices(scores_dir: Path, values: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """Per value, the models x prompts matrix of 1/0 outcomes on the prompts every model answered."""
    columns = ["model", "prompt", *(label_column(v) for v in values)]
    rows = pq.read_table(scores_dir, columns=columns).to_pandas()
    pooled = rows.groupby(["model", "prompt"], sort=True).mean(numeric_only=True)
    out = {}
    for value in values:
        y = (pooled[label_column(value)] >= 0.5).astype(float).unstack("prompt")
        out[value] = y.dropna(axis=1)  # the prompts some model lacks an answer to
    return out


def skip_reason(y: np.ndarray) -> str:
    """Why a value cannot rank these models ("" when it can)."""
    if np.all(y == 1) or np.all(y == 0):
        return "every answer conforms" if y[0, 0] else "no answer conforms"
    if np.all(y == y[0]):
        return "every model gave the same answers"
    return ""


def spearman_rows(estimates: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Spearman of each row of `estimates` (draws x models) with the reference; 0 for a row with
    no spread (no ranking at all)."""
    ranks = rankdata(np.atleast_2d(estimates), axis=1)
    ranks = ranks - ranks.mean(axis=1, keepdims=True)
    ref = rankdata(reference) - rankdata(reference).mean()
    norm = np.sqrt((ranks**2).sum(axis=1) * (ref**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ranks @ ref) / norm
    return np.where(norm > 0, rho, 0.0)


def adaptive_estimates(y: np.ndarray, a: np.ndarray, b: np.ndarray, active: np.ndarray,
                       budgets: tuple[int, ...], batch: int) -> np.ndarray:
    """budgets x models abilities of the adaptive test stopped at each budget (its first k items)."""
    states = run_cat(lambda m, items: y[m, items], a, b, len(y),
                     StopRule(target_se=0.0, max_items=max(budgets), batch=batch), active)
    out = np.empty((len(budgets), len(y)))
    for i, k in enumerate(budgets):
        asked = np.full_like(y, np.nan)
        for m, state in enumerate(states):
            items = list(state.asked[:k])  # a test with budget k would have asked exactly these
            asked[m, items] = y[m, items]
        out[i] = estimate_ability(asked, a, b)[0]
    return out


def random_estimates(y: np.ndarray, a: np.ndarray, b: np.ndarray, active: np.ndarray, k: int,
                     draws: int, rng: np.random.Generator) -> np.ndarray:
    """draws x models abilities from k active items drawn at random for each model (all when fewer)."""
    pool = np.flatnonzero(active)
    n_models = len(y)
    keys = rng.random((draws, n_models, len(pool)))
    picked = pool[np.argsort(keys, axis=2)[:, :, : min(k, len(pool))]]
    asked = np.full((draws, n_models, y.shape[1]), np.nan)
    d, m = np.indices(picked.shape[:2])
    asked[d[..., None], m[..., None], picked] = y[m[..., None], picked]
    return estimate_ability(asked.reshape(-1, y.shape[1]), a, b)[0].reshape(draws, n_models)


def in_sample(y: np.ndarray, budgets: tuple[int, ...], draws: int, batch: int,
              rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """The full-bank ranking and, per budget, the adaptive and random Spearman with it, items
    calibrated on every model."""
    fit = fit_2pl(y)
    active = (fit.items["retired"] == "").to_numpy()
    a, b = fit.items["a"].to_numpy(), fit.items["b"].to_numpy()
    reference = estimate_ability(np.where(active, y, np.nan), a, b)[0]
    adaptive = adaptive_estimates(y, a, b, active, budgets, batch)
    rows = []
    for i, k in enumerate(budgets):
        rho = spearman_rows(random_estimates(y, a, b, active, k, draws, rng), reference)
        rows.append({"items": k, "adaptive": spearman_rows(adaptive[i], reference)[0],
                     "random": rho.mean(), "random_p90": (rho >= 0.9).mean()})
    info = {"active": int(active.sum()), "map_vs_eap": spearmanr(fit.theta, reference)[0],
            "conform_share": float(y.mean())}
    return reference, [{**row, **info} for row in rows]


def leave_one_out(y: np.ndarray, reference: np.ndarray, budgets: tuple[int, ...], draws: int, batch: int,
                  rng: np.random.Generator) -> list[dict]:
    """As `in_sample`, but each model is tested on items calibrated without it; the last row
    ("full") is every item the held-out calibration keeps active."""
    n_models = len(y)
    adaptive = np.empty((len(budgets) + 1, n_models))
    random = np.empty((len(budgets), draws, n_models))
    for m in range(n_models):
        fit = fit_2pl(np.delete(y, m, axis=0))
        active = (fit.items["retired"] == "").to_numpy()
        a, b = fit.items["a"].to_numpy(), fit.items["b"].to_numpy()
        adaptive[:-1, m] = adaptive_estimates(y[m : m + 1], a, b, active, budgets, batch)[:, 0]
        adaptive[-1, m] = estimate_ability(np.where(active, y[m : m + 1], np.nan), a, b)[0][0]
        for i, k in enumerate(budgets):
            random[i, :, m] = random_estimates(y[m : m + 1], a, b, active, k, draws, rng)[:, 0]
    rows = []
    for i, k in enumerate([*budgets, "full"]):
        row = {"items": k, "adaptive": spearman_rows(adaptive[i], reference)[0]}
        if k != "full":
            rho = spearman_rows(random[i], reference)
            row.update(random=rho.mean(), random_p90=(rho >= 0.9).mean())
        rows.append(row)
    return rows


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per budget: mean Spearman over values and the share of values at or above 0.9."""
    grouped = table.groupby("items", sort=False)
    def share(s: pd.Series) -> float:
        return (s.dropna() >= 0.9).mean() if s.notna().any() else np.nan

    out = pd.DataFrame({"adaptive": grouped["adaptive"].mean(),
                        "adaptive>=0.9": grouped["adaptive"].apply(share),
                        "random": grouped["random"].mean(), "random>=0.9": grouped["random"].apply(share),
                        "random draws>=0.9": grouped["random_p90"].mean()})
    if "active" in table:  # values whose every active item is asked: both methods are the full bank there
        capped = table["items"] >= table["active"]
        out["values k>=active"] = capped.groupby(table["items"], sort=False).sum()
    return out


def items_needed(summary: pd.DataFrame, column: str, target: float = 0.9, stay: bool = False) -> int | None:
    """The fewest items whose mean Spearman over values reaches the target (None: none does); with
    `stay`, the fewest from which every larger budget reaches it too."""
    numeric = summary[[isinstance(k, (int, np.integer)) for k in summary.index]].sort_index()
    reached = numeric[column] >= target
    if stay:
        reached = reached[::-1].cummin()[::-1]
    return int(reached.index[reached][0]) if reached.any() else None


def needed_line(summary: pd.DataFrame) -> str:
    counts = [f"{c} {items_needed(summary, c)} / {items_needed(summary, c, stay=True)}"
              for c in ("adaptive", "random")]
    return "fewest items for a mean >= 0.9 (first reached / held at every larger k): " + ", ".join(counts)


def run(audit: Path, budgets: tuple[int, ...], draws: int, batch: int, lomo: bool, seed: int,
        per_value: bool) -> None:
    taxonomy = read_taxonomy(audit / "stats" / "taxonomy.json")
    matrices = read_matrices(audit / "scores", taxonomy.ids)
    rng = np.random.default_rng(seed)
    rows, lomo_rows, skipped = [], [], {}
    for value, frame in matrices.items():
        y = frame.to_numpy()
        if reason := skip_reason(y):
            skipped[value] = reason
            continue
        reference, value_rows = in_sample(y, budgets, draws, batch, rng)
        rows += [{"value": value, **r} for r in value_rows]
        if lomo:
            held = leave_one_out(y, reference, budgets, draws, batch, rng)
            lomo_rows += [{"value": value, **r} for r in held]
    first = next(iter(matrices.values()))
    names = ", ".join(map(str, first.index[:8])) + (", ..." if len(first) > 8 else "")
    print(f"{audit}: {len(first)} models ({names}) x {first.shape[1]} prompts "
          f"every model answered; {len(matrices) - len(skipped)} of {len(matrices)} values rank them")
    for value, reason in skipped.items():
        print(f"  skipped {value}: {reason}")
    table = pd.DataFrame(rows)
    if table.empty:
        return
    per = table.groupby("value", sort=False).first()
    print(f"active items per value: {per['active'].min()}-{per['active'].max()} (median "
          f"{per['active'].median():.0f}); joint MAP vs full-bank EAP ranking: Spearman "
          f"{per['map_vs_eap'].mean():.3f} on average; {draws} random draws per value and k")
    if per_value:
        print(table.pivot(index="value", columns="items", values="adaptive").assign(
            active=per["active"], conform=per["conform_share"]).to_string(float_format=lambda x: f"{x:.2f}"))
    summary = summarise(table)
    print("\nIn-sample (items calibrated on the same models): Spearman with the full-bank ranking, "
          "mean over values and share of values >= 0.9")
    print(summary.to_string(float_format=lambda x: f"{x:.3f}"))
    print(needed_line(summary))
    if lomo_rows:
        held = summarise(pd.DataFrame(lomo_rows))
        print("\nLeave one model out (each model tested on items calibrated on the others; 'full' = "
              "all items active there):")
        print(held.to_string(float_format=lambda x: f"{x:.3f}", na_rep="-"))
        print(needed_line(held))
    n = len(first)
    print(f"\nWith {n} models Spearman takes few values: one swap of neighbours gives "
          f"{1 - 6 * 2 / (n * (n * n - 1)):.3f}, two give {1 - 6 * 4 / (n * (n * n - 1)):.3f}. The first "
          "adaptive batch is the same for every model (all start at the prior). In-sample, the item "
          "parameters were fitted to the very answers the tests look up.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audit", type=Path, help="an audit's output folder (scores/, stats/taxonomy.json)")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), help="items per model")
    parser.add_argument("--draws", type=int, default=200, help="random subsets per value and budget")
    parser.add_argument("--batch", type=int, default=5, help="adaptive items per round")
    parser.add_argument("--lomo", action=argparse.BooleanOptionalAction, default=True,
                        help="also calibrate without the tested model")
    parser.add_argument("--per-value", action="store_true", help="print the adaptive Spearman per value")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(args.audit, tuple(sorted(args.budgets)), args.draws, args.batch, args.lomo, args.seed, args.per_value)


if __name__ == "__main__":
    main()
