"""The adaptive test: the most informative items first, the SE falls as answers come, the stop rules hold,
and on a simulation it ranks models better than as many random items."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from valuecsv_ray.adaptive.cat import (
    CatState,
    StopRule,
    item_information,
    next_batch,
    plan_round,
    run_cat,
    update,
)
from valuecsv_ray.adaptive.irt import estimate_ability
from valuecsv_ray.adaptive.simulate import draw_parameters, simulate_responses


def test_information_peaks_where_difficulty_meets_ability():
    b = np.linspace(-3, 3, 61)
    info = item_information(0.7, np.ones_like(b), b)
    assert b[np.argmax(info)] == pytest.approx(0.7)
    assert item_information(0.0, np.array([2.0]), np.array([0.0]))[0] == pytest.approx(1.0)  # a^2 / 4


def test_next_batch_is_the_most_informative_unasked_active_items():
    a = np.array([1.0, 2.0, 1.0, 2.0, 0.5, 2.0])
    b = np.array([0.0, 0.1, 3.0, 0.0, 0.0, -0.1])
    active = np.array([True, True, True, True, True, False])  # item 5 is retired
    state = CatState(asked=(3,), outcomes=(1.0,), theta=0.0)
    assert next_batch(state, a, b, 1, active).tolist() == [1]  # item 3 (best) asked, 5 inactive
    assert next_batch(state, a, b, 3, active).tolist() == [1, 0, 4]
    assert next_batch(state, a, b, 10, active).tolist() == [1, 0, 4, 2]  # fewer when fewer are left
    far = CatState(theta=3.0)
    assert next_batch(far, a, b, 1).tolist() == [2]  # the hard item for a strong model


def test_standard_error_falls_as_items_are_added():
    truth = draw_parameters(1, 200, np.random.default_rng(0))
    y = simulate_responses(truth, np.random.default_rng(1))[0]
    rule = StopRule(target_se=0.0, max_items=200, batch=5)
    state, ses = CatState(), []
    for _ in range(8):
        items = next_batch(state, truth.a, truth.b, 5)
        state = update(state, items, y[items], truth.a, truth.b, rule)
        ses.append(state.se)
    assert np.all(np.diff(ses) < 0)
    assert ses[0] < 1.0 and len(state.asked) == 40 and state.rounds == 8
    theta, se = estimate_ability(y[list(state.asked)][None, :], truth.a[list(state.asked)],
                                 truth.b[list(state.asked)])
    assert (state.theta, state.se) == pytest.approx((theta[0], se[0]))  # the EAP of every answer so far


def test_stops_at_the_target_se_the_item_budget_or_an_empty_bank():
    truth = draw_parameters(3, 120, np.random.default_rng(2))
    y = simulate_responses(truth, np.random.default_rng(3))

    def answer(m, items):
        return y[m, items]

    by_se = run_cat(answer, truth.a, truth.b, 3, StopRule(target_se=0.45, max_items=120, batch=4))
    assert all(s.se <= 0.45 and s.stopped.startswith("se ") for s in by_se)
    assert all(len(s.asked) < 60 for s in by_se)
    by_budget = run_cat(answer, truth.a, truth.b, 3, StopRule(target_se=0.01, max_items=18, batch=4))
    assert [len(s.asked) for s in by_budget] == [18, 18, 18]  # 4 + 4 + 4 + 4 + 2
    assert all(s.stopped == "item budget 18 reached" and s.rounds == 5 for s in by_budget)
    active = np.zeros(120, dtype=bool)
    active[:7] = True
    by_bank = run_cat(answer, truth.a, truth.b, 3, StopRule(target_se=0.01, max_items=50, batch=4), active)
    assert all(sorted(s.asked) == list(range(7)) and s.stopped == "all 7 active items asked" for s in by_bank)
    assert all(len(set(s.asked)) == len(s.asked) for s in by_se + by_budget + by_bank)  # none twice


def test_a_round_plans_every_running_model_and_none_that_stopped():
    a, b = np.ones(20), np.linspace(-2, 2, 20)
    states = [CatState(), CatState(stopped="se 0.2 <= target 0.3"), CatState(asked=tuple(range(9)),
                                                                           outcomes=(1.0,) * 9)]
    plan = plan_round(states, a, b, StopRule(max_items=10, batch=3))
    assert set(plan) == {0, 2} and len(plan[0]) == 3 and len(plan[2]) == 1  # budget 10: one left
    assert plan_round([CatState(stopped="done")], a, b, StopRule()) == {}


def test_update_refuses_mismatched_answers():
    with pytest.raises(ValueError, match="2 items but 1 outcomes"):
        update(CatState(), np.array([0, 1]), np.array([1.0]), np.ones(3), np.zeros(3), StopRule())


def test_adaptive_items_rank_models_better_than_as_many_random_items():
    truth = draw_parameters(30, 300, np.random.default_rng(4), b_sd=1.5)
    y = simulate_responses(truth, np.random.default_rng(5))
    states = run_cat(lambda m, items: y[m, items], truth.a, truth.b, 30,
                     StopRule(target_se=0.0, max_items=20, batch=5))
    adaptive = spearmanr([s.theta for s in states], truth.theta)[0]
    rng = np.random.default_rng(6)
    random_rho = []
    for _ in range(5):
        mask = np.full(y.shape, np.nan)
        for m in range(30):
            items = rng.choice(300, 20, replace=False)
            mask[m, items] = y[m, items]
        random_rho.append(spearmanr(estimate_ability(mask, truth.a, truth.b)[0], truth.theta)[0])
    assert adaptive > np.mean(random_rho), (adaptive, random_rho)
    assert np.mean([s.se for s in states]) < 0.4
