"""How many items the adaptive test needs to rank models as the full bank does, against random items.

    python bench/adaptive_items.py                        # 30 models, 400 items, 5 seeds
    python bench/adaptive_items.py --b-sd 1.0 --seeds 10

Per seed, on simulated 2PL data: items are calibrated (`irt.fit_2pl`) on the answers of 30
calibration models; 30 other models then answer the whole bank, and their abilities from every
active item (EAP under the calibrated parameters) are the full-bank ranking. The adaptive test
(`cat.run_cat`, 5 items a round, chosen by Fisher information) and a random subset of the same
size per model are scored by the Spearman correlation of their abilities with that ranking. The
table gives, per number of items, the mean (and worst) correlation over seeds, and below it the
fewest items reaching a mean of 0.9. A second table stops the adaptive test at a target SE
instead, with the calibrated and with the true item parameters: how many items that takes and
how well it ranks against the true abilities. No Ray, no torch.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from valuecsv_ray.adaptive.cat import StopRule, run_cat
from valuecsv_ray.adaptive.irt import estimate_ability, fit_2pl
from valuecsv_ray.adaptive.simulate import draw_parameters, simulate_responses

BUDGETS = (5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100)


def one_seed(seed: int, n_models: int, n_items: int, b_sd: float, batch: int,
             budgets: tuple[int, ...]) -> list[dict]:
    """Spearman with the full-bank ranking, adaptive and random, per budget, for one seed."""
    rng = np.random.default_rng(seed)
    truth = draw_parameters(2 * n_models, n_items, rng, b_sd=b_sd)
    y = simulate_responses(truth, rng)
    calibration, test = y[:n_models], y[n_models:]  # calibrate on some models, test the others
    fit = fit_2pl(calibration)
    active = (fit.items["retired"] == "").to_numpy()
    a, b = fit.items["a"].to_numpy(), fit.items["b"].to_numpy()
    full, _ = estimate_ability(np.where(active, test, np.nan), a, b)
    states = run_cat(lambda m, items: test[m, items], a, b, n_models,
                     StopRule(target_se=0.0, max_items=max(budgets), batch=batch), active)
    rows = []
    for n in budgets:
        adaptive = np.full_like(test, np.nan)
        random = np.full_like(test, np.nan)
        for m, state in enumerate(states):
            asked = list(state.asked[:n])  # the adaptive test stopped at n items asked exactly these
            adaptive[m, asked] = test[m, asked]
            drawn = rng.choice(np.flatnonzero(active), n, replace=False)
            random[m, drawn] = test[m, drawn]
        rows.append({"seed": seed, "items": n,
                     "adaptive": spearmanr(estimate_ability(adaptive, a, b)[0], full)[0],
                     "random": spearmanr(estimate_ability(random, a, b)[0], full)[0],
                     "full_vs_truth": spearmanr(full, truth.theta[n_models:])[0],
                     "active_items": int(active.sum())})
    return rows


def stop_at_se(seed: int, n_models: int, n_items: int, b_sd: float, batch: int,
               targets: tuple[float, ...]) -> list[dict]:
    """Adaptive tests that stop at a target SE, with calibrated and with true item parameters:
    items asked, the SE they report, and their Spearman with the true abilities."""
    rng = np.random.default_rng(seed)
    truth = draw_parameters(2 * n_models, n_items, rng, b_sd=b_sd)
    y = simulate_responses(truth, rng)
    calibration, test = y[:n_models], y[n_models:]
    fit = fit_2pl(calibration)
    active = (fit.items["retired"] == "").to_numpy()
    rows = []
    for params, a, b in (("calibrated", fit.items["a"].to_numpy(), fit.items["b"].to_numpy()),
                         ("true", truth.a, truth.b)):
        for target in targets:
            states = run_cat(lambda m, items: test[m, items], a, b, n_models,
                             StopRule(target_se=target, max_items=n_items, batch=batch), active)
            rows.append({"seed": seed, "parameters": params, "target_se": target,
                         "items": np.mean([len(s.asked) for s in states]),
                         "se": np.mean([s.se for s in states]),
                         "vs_truth": spearmanr([s.theta for s in states], truth.theta[n_models:])[0]})
    return rows


def items_needed(table: pd.DataFrame, column: str, target: float = 0.9) -> int | None:
    """The fewest items whose mean correlation over seeds reaches the target (None: none does)."""
    means = table.groupby("items")[column].mean()
    reached = means[means >= target]
    return int(reached.index.min()) if len(reached) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=30, help="test models (and as many calibration models)")
    parser.add_argument("--items", type=int, default=400, help="items in the bank")
    parser.add_argument("--b-sd", type=float, default=1.5, help="spread of the item difficulties")
    parser.add_argument("--batch", type=int, default=5, help="adaptive items per round")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    table = pd.DataFrame([row for seed in range(args.seeds) for row in
                          one_seed(seed, args.models, args.items, args.b_sd, args.batch, BUDGETS)])
    summary = table.groupby("items").agg(adaptive=("adaptive", "mean"), adaptive_min=("adaptive", "min"),
                                         random=("random", "mean"), random_min=("random", "min"))
    print(f"{args.models} test models, {args.items} items (b sd {args.b_sd}), {args.seeds} seeds; "
          f"active items after calibration: {table['active_items'].mean():.0f}; full bank vs true "
          f"abilities: Spearman {table['full_vs_truth'].mean():.3f}")
    print("Spearman of the abilities with the full-bank ranking (mean and worst over seeds):")
    print(summary.to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"items needed for a mean Spearman >= 0.9: adaptive {items_needed(table, 'adaptive')}, "
          f"random {items_needed(table, 'random')}")
    stops = pd.DataFrame([row for seed in range(args.seeds) for row in
                          stop_at_se(seed, args.models, args.items, args.b_sd, args.batch, (0.4, 0.3, 0.25))])
    print("\nStopping at a target SE, with the calibrated and with the true item parameters "
          "(means over seeds; Spearman with the true abilities):")
    print(stops.groupby(["parameters", "target_se"])[["items", "se", "vs_truth"]].mean()
          .to_string(float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
