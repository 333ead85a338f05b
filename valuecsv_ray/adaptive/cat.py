"""The adaptive test: per model and value, ask the items most informative at the current estimate.

    rule = StopRule(target_se=0.3, max_items=60, batch=10)
    states = [CatState() for _ in models]
    while plan := plan_round(states, a, b, rule, active):          # {model index: item indices}
        outcomes = collect(plan)                                    # one batched collection per round
        for m, items in plan.items():
            states[m] = update(states[m], items, outcomes[m], a, b, rule, n_active)

or, where answers can be looked up (a simulation, answers already collected):
`run_cat(answer, a, b, n_models, rule)`. Items are chosen by Fisher information
I_j(theta) = a_j^2 P_j (1 - P_j) at the model's current estimate (largest where b_j = theta), a
batch of `rule.batch` per round so collection stays batched; the estimate is the EAP under the
item parameters of the bank (`irt.estimate_ability`), starting from the prior N(0, 1). A test
stops at the target standard error, the item budget, or when no active item is left.
No Ray, no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from valuecsv_ray.adaptive.irt import estimate_ability


@dataclass(frozen=True)
class StopRule:
    """How many items a round asks and when a model's test ends."""

    target_se: float = 0.3  # stop once the ability's standard error is at or below this
    max_items: int = 100  # item budget per model and value
    batch: int = 10  # items asked per round (one collection per round)


@dataclass(frozen=True)
class CatState:
    """One model's adaptive test on one value: what it was asked, its estimate, why it stopped."""

    asked: tuple[int, ...] = ()  # item indices, in the order asked
    outcomes: tuple[float, ...] = ()  # 1 conforms, 0 violates, NaN no usable answer
    theta: float = 0.0  # current ability estimate (the prior mean before any answer)
    se: float = 1.0  # its standard error (the prior sd before any answer)
    rounds: int = 0
    stopped: str = ""  # why the test ended; "" while it runs


def item_information(theta: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fisher information of each item at ability theta: a^2 P (1 - P)."""
    p = expit(np.asarray(a) * (theta - np.asarray(b)))
    return np.asarray(a) ** 2 * p * (1 - p)


def next_batch(state: CatState, a: np.ndarray, b: np.ndarray, k: int,
               active: np.ndarray | None = None) -> np.ndarray:
    """The k most informative items at the state's estimate, most informative first, among the
    active items not asked yet (fewer when fewer are left)."""
    info = item_information(state.theta, a, b)
    available = np.ones(len(info), dtype=bool) if active is None else np.asarray(active, dtype=bool).copy()
    available[list(state.asked)] = False
    candidates = np.flatnonzero(available)
    order = np.argsort(-info[candidates], kind="stable")
    return candidates[order[:k]]


def stop_reason(state: CatState, rule: StopRule, n_active: int) -> str:
    """Why the test should end now ("" to go on)."""
    if state.asked and state.se <= rule.target_se:
        return f"se {state.se:.3f} <= target {rule.target_se}"
    if len(state.asked) >= rule.max_items:
        return f"item budget {rule.max_items} reached"
    if len(state.asked) >= n_active:
        return f"all {n_active} active items asked"
    return ""


def update(state: CatState, items: np.ndarray, outcomes: np.ndarray, a: np.ndarray, b: np.ndarray,
           rule: StopRule, n_active: int | None = None, prior_sd: float = 1.0) -> CatState:
    """The state after a round's answers: items asked, estimate and SE from all answers so far
    (EAP), and the stop reason. `n_active` is the number of items the test may use."""
    items, outcomes = np.asarray(items, dtype=int), np.asarray(outcomes, dtype=float)
    if items.shape != outcomes.shape:
        raise ValueError(f"{len(items)} items but {len(outcomes)} outcomes")
    asked = state.asked + tuple(int(i) for i in items)
    answers = state.outcomes + tuple(float(o) for o in outcomes)
    idx = np.asarray(asked, dtype=int)
    theta, se = estimate_ability(np.asarray(answers)[None, :], np.asarray(a)[idx], np.asarray(b)[idx],
                                 prior_sd=prior_sd)
    new = CatState(asked=asked, outcomes=answers, theta=float(theta[0]), se=float(se[0]),
                   rounds=state.rounds + 1)
    reason = stop_reason(new, rule, len(a) if n_active is None else n_active)
    return CatState(**{**new.__dict__, "stopped": reason})


def plan_round(states: list[CatState], a: np.ndarray, b: np.ndarray, rule: StopRule,
               active: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """The next batch for every model still running: {model index: item indices}; empty when all
    tests have ended."""
    plan = {}
    for m, state in enumerate(states):
        k = min(rule.batch, rule.max_items - len(state.asked))
        if state.stopped or k <= 0:
            continue
        items = next_batch(state, a, b, k, active)
        if len(items):
            plan[m] = items
    return plan


def run_cat(answer: Callable[[int, np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray,
            n_models: int, rule: StopRule = StopRule(), active: np.ndarray | None = None,
            prior_sd: float = 1.0) -> list[CatState]:
    """Adaptive tests of n_models models, round by round, where `answer(model, items)` returns
    the model's outcomes on those items (1/0/NaN)."""
    n_active = len(a) if active is None else int(np.sum(active))
    states = [CatState(se=prior_sd) for _ in range(n_models)]
    while plan := plan_round(states, a, b, rule, active):
        for m, items in plan.items():
            states[m] = update(states[m], items, answer(m, items), a, b, rule, n_active, prior_sd)
    return states
