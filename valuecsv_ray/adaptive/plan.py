"""What a round asks: round 0 every seed item; later rounds, per (model, value) test still running,
the most informative calibrated items it has not answered (Fisher information at its estimate).

    tests = running_tests(abilities, outcomes, cfg)      # SE above the target, item budget left
    plan = plan_asks(bank, outcomes, tests, cfg)         # model, value, item_id, a, b, order
"""

from __future__ import annotations

import pandas as pd

from valuecsv_ray.adaptive import bank as bank_
from valuecsv_ray.adaptive.cat import CatState, next_batch, stop_reason
from valuecsv_ray.adaptive.config import AdaptiveConfig


def running_tests(abilities: pd.DataFrame, outcomes: pd.DataFrame, cfg: AdaptiveConfig) -> pd.DataFrame:
    """The (model, value) tests that go on (SE above the target, item budget left): model, value,
    theta, se, answered."""
    answered = outcomes.groupby(["model", "value"]).size().rename("answered").reset_index()
    tests = abilities.merge(answered, on=["model", "value"], how="left").fillna({"answered": 0})
    tests["answered"] = tests["answered"].astype(int)
    going = (tests["se"] > cfg.target_se) & (tests["answered"] < cfg.max_items)
    return tests.loc[going, ["model", "value", "theta", "se", "answered"]].reset_index(drop=True)


def plan_asks(bank: bank_.Bank, outcomes: pd.DataFrame, tests: pd.DataFrame,
              cfg: AdaptiveConfig) -> pd.DataFrame:
    """The next batch of each running test (`running_tests`) among the calibrated active items its
    model has not answered, most informative first: model, value, item_id, a, b, order."""
    rule = cfg.stop_rule
    rows = []
    for value, group in tests.groupby("value", sort=False):
        params = bank_.item_parameters(bank, str(value))
        position = {item: k for k, item in enumerate(params["item_id"])}
        a, b = params["a"].to_numpy(dtype=float), params["b"].to_numpy(dtype=float)
        for test in group.itertuples():
            done = outcomes.loc[(outcomes["model"] == test.model) & (outcomes["value"] == value), "item_id"]
            state = CatState(asked=tuple(position[i] for i in done if i in position), theta=test.theta,
                             se=test.se)
            k = min(rule.batch, rule.max_items - test.answered)
            if k <= 0 or stop_reason(state, rule, len(params)):
                continue
            for order, j in enumerate(next_batch(state, a, b, k)):
                rows.append({"model": test.model, "value": value, "item_id": params["item_id"][j],
                             "a": a[j], "b": b[j], "order": order})
    return pd.DataFrame(rows, columns=["model", "value", "item_id", "a", "b", "order"])


def seed_plan(bank: bank_.Bank, values: list[str]) -> pd.DataFrame:
    """Round 0: every active item that targets one of the values (or all of them)."""
    items = bank.items[bank.items["status"] == bank_.ACTIVE]
    on = [not list(t) or bool(set(t) & set(values)) for t in items["values"]]
    return pd.DataFrame({"item_id": items.loc[on, "item_id"].to_numpy()})


def needs_seed_round(bank: bank_.Bank, values: list[str]) -> bool:
    return any(bank_.item_parameters(bank, v).empty for v in values)


def prior(models: list[str], values: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "value": v, "theta": 0.0, "se": 1.0} for v in values for m in models])
