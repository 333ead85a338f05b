"""The 2PL MAP calibration: parameters are recovered from simulated answers, sparse data stays finite,
items that do not separate models are retired, and abilities under fixed items are estimated."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad
from scipy.special import expit
from scipy.stats import spearmanr

from valuecsv_ray.adaptive.irt import (
    Priors,
    RetireRules,
    calibrate,
    estimate_ability,
    fit_2pl,
    negative_log_posterior,
    retire_reason,
)
from valuecsv_ray.adaptive.simulate import Truth, draw_parameters, simulate_responses


def _oracle_b(y: np.ndarray, truth: Truth, b_sd: float = 2.0) -> np.ndarray:
    """Each item's MAP difficulty knowing the true abilities and discriminations: the best any
    calibration can do with these answers (Newton per item, vectorised)."""
    b = np.zeros(y.shape[1])
    for _ in range(100):
        p = expit(truth.a * (truth.theta[:, None] - b))
        grad = -truth.a * np.sum(y - p, axis=0) - b / b_sd**2  # d log posterior / d b
        hess = truth.a**2 * np.sum(p * (1 - p), axis=0) + 1 / b_sd**2
        b = b + np.clip(grad / hess, -1, 1)
    return b


def test_parameter_recovery_30_models_300_items():
    """The issue's check: abilities and difficulties correlate >= 0.9 (Spearman) with the truth.
    Item difficulties spread wider than the models (sd 1.5), as in a bank built to cover them."""
    truth = draw_parameters(30, 300, np.random.default_rng(0), b_sd=1.5)
    fit = fit_2pl(simulate_responses(truth, np.random.default_rng(1)))
    assert fit.converged
    rho_theta, rho_b = spearmanr(fit.theta, truth.theta)[0], spearmanr(fit.items["b"], truth.b)[0]
    assert rho_theta >= 0.9, rho_theta
    assert rho_b >= 0.9, rho_b
    assert spearmanr(fit.items["a"], truth.a)[0] > 0.3  # 30 answers say little about a, but something
    # standard errors are honest: about 95% of the true difficulties lie within 2 SE (scale is set
    # by the theta prior, so compare after matching location and scale to the truth's)
    b_hat = (fit.items["b"] - fit.items["b"].mean()) / fit.theta.std() * truth.theta.std() + truth.b.mean()
    inside = np.abs(b_hat - truth.b) <= 2 * fit.items["se_b"] / fit.theta.std() * truth.theta.std()
    assert 0.85 <= inside.mean() <= 1.0, inside.mean()


def test_difficulty_recovery_reaches_the_oracle_when_items_sit_among_the_models():
    """With b ~ N(0, 1) 30 answers per item allow only ~0.9; the joint fit gets what knowing the true
    abilities would give (so the limit is the data, not the estimator)."""
    truth = draw_parameters(30, 300, np.random.default_rng(3))
    y = simulate_responses(truth, np.random.default_rng(4))
    fit = fit_2pl(y)
    rho, oracle = spearmanr(fit.items["b"], truth.b)[0], spearmanr(_oracle_b(y, truth), truth.b)[0]
    assert rho >= oracle - 0.01, (rho, oracle)
    assert spearmanr(fit.theta, truth.theta)[0] >= 0.95


def test_the_gradient_matches_finite_differences_on_sparse_answers():
    truth = draw_parameters(6, 9, np.random.default_rng(13))
    y = simulate_responses(truth, np.random.default_rng(14), missing=0.3)
    objective = negative_log_posterior(y, Priors(theta_sd=1.3, log_a_mean=0.2, log_a_sd=0.4, b_sd=1.7))
    x = np.random.default_rng(15).normal(0, 0.7, 6 + 2 * 9)
    assert check_grad(lambda v: objective(v)[0], lambda v: objective(v)[1], x) < 1e-5


def test_sparse_answers_keep_every_estimate_finite():
    truth = draw_parameters(12, 80, np.random.default_rng(5))
    y = simulate_responses(truth, np.random.default_rng(6), missing=0.9)
    y[:, 0] = np.nan  # an item nobody answered
    y[0, :] = np.nan  # a model with no answers
    y[1:, 1] = np.where(np.isnan(y[1:, 1]), np.nan, 1.0)  # an item everyone who answered conforms on
    fit = fit_2pl(y)
    values = [fit.theta, fit.theta_se, fit.items[["a", "b", "se_a", "se_b"]].to_numpy()]
    assert all(np.isfinite(v).all() for v in values)
    assert fit.theta[0] == pytest.approx(0.0, abs=1e-3) and fit.theta_se[0] == pytest.approx(1.0)
    assert fit.items.loc[0, "n_responses"] == 0
    assert fit.items.loc[0, "b"] == pytest.approx(0.0, abs=1e-3)  # the prior, untouched
    assert fit.items.loc[0, "se_b"] == pytest.approx(2.0, rel=1e-3)  # the prior's sd
    assert abs(fit.items.loc[1, "b"]) < 8  # pulled in by its prior, not off to -inf


def test_items_that_do_not_separate_models_are_retired_with_the_reason():
    rng = np.random.default_rng(7)
    truth = draw_parameters(20, 40, rng)
    y = simulate_responses(truth, rng)
    y[:, 0], y[:, 1] = 1.0, 0.0  # everyone conforms / no one does
    y[:, 2] = (rng.random(20) < 0.5).astype(float)  # a coin flip: unrelated to ability
    fit = fit_2pl(y, rules=RetireRules(a_floor=0.5), value="justice")
    reasons = fit.items["retired"]
    assert reasons[0] == "every one of the 20 models that answered conforms on justice"
    assert reasons[1] == "none of the 20 models that answered conforms on justice"
    assert fit.items.loc[2, "a"] < fit.items.loc[3:, "a"].median()
    assert (reasons[3:] == "").mean() > 0.8  # most real items stay


def test_retire_rules_need_enough_answers_for_unanimity():
    rules = RetireRules(a_floor=0.3, min_responses=5)
    assert retire_reason(1.0, 4, 4, "v", rules) == ""  # 4 of 4 is not yet evidence
    assert "every one of the 5" in retire_reason(1.0, 5, 5, "v", rules)
    assert "below the floor 0.3" in retire_reason(0.2, 10, 5, "v", rules)


def test_item_fit_flags_an_item_answered_against_ability():
    truth = draw_parameters(40, 60, np.random.default_rng(8), theta_sd=1.5)
    y = simulate_responses(truth, np.random.default_rng(9))
    y[:, 0] = (truth.theta < np.median(truth.theta)).astype(float)  # the weaker half conforms
    fit = fit_2pl(y, rules=RetireRules(a_floor=0.0))
    assert fit.items.loc[0, "infit"] > 1.2 or fit.items.loc[0, "a"] < 0.5
    assert 0.8 < fit.items.loc[1:, "infit"].median() < 1.2


def test_calibrate_long_outcomes_per_value():
    rng = np.random.default_rng(10)
    rows = []
    for value, shift in (("v1", 0.0), ("v2", 2.0)):
        truth = draw_parameters(10, 30, rng)
        truth = Truth(truth.theta + shift, truth.a, truth.b)
        y = simulate_responses(truth, rng, missing=0.2)
        rows += [(f"m{i}", f"it{j}", value, y[i, j]) for i, j in np.argwhere(~np.isnan(y))]
    outcomes = pd.DataFrame(rows, columns=["model", "item_id", "value", "conforms"])
    abilities, items = calibrate(outcomes)
    assert set(abilities["value"]) == {"v1", "v2"} and len(abilities) == 20
    assert len(items) == 60 and {"item_id", "value", "a", "b", "infit", "retired"} <= set(items.columns)
    n = items.set_index(["item_id", "value"])["n_responses"]
    assert n.sum() == len(outcomes)
    with pytest.raises(ValueError, match="repeated outcomes.*model 'm0'"):
        calibrate(pd.concat([outcomes.iloc[:1], outcomes]))
    with pytest.raises(ValueError, match="conforms"):
        calibrate(outcomes.drop(columns="conforms"))


def test_ability_estimates_under_fixed_items():
    truth = draw_parameters(30, 200, np.random.default_rng(11))
    y = simulate_responses(truth, np.random.default_rng(12))
    for method in ("eap", "map"):
        theta, se = estimate_ability(y, truth.a, truth.b, method=method)
        assert spearmanr(theta, truth.theta)[0] > 0.95
        assert np.all((se > 0.05) & (se < 0.3))
    theta, se = estimate_ability(np.full((1, 200), np.nan), truth.a, truth.b)
    assert theta[0] == pytest.approx(0.0, abs=1e-9) and se[0] == pytest.approx(1.0, abs=1e-3)
    all_yes, se_yes = estimate_ability(np.ones((1, 5)), truth.a[:5], truth.b[:5])
    assert np.isfinite(all_yes[0]) and all_yes[0] > 0.5 and se_yes[0] < 1.0
    with pytest.raises(ValueError, match="0, 1 or NaN; model 0, item 1 is 2.0"):
        estimate_ability(np.array([[1.0, 2.0]]), [1, 1], [0, 0])
    with pytest.raises(ValueError, match="unknown ability method 'mle'"):
        estimate_ability(y, truth.a, truth.b, method="mle")
