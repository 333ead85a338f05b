"""Two-parameter item response model (2PL) with priors: calibrate items, estimate abilities.

    fit = fit_2pl(y)                       # y: models x items, 1 conforms / 0 violates / NaN not asked
    fit.theta, fit.theta_se                # each model's ability on this value, with its SE
    fit.items                              # per item: a, b, se_a, se_b, n_responses, infit, outfit, retired
    theta, se = estimate_ability(y, a, b)  # abilities only, item parameters held fixed (the adaptive test)

P(conforms) = sigmoid(a_j * (theta_i - b_j)): theta_i a model's conformity on one value, b_j the
item's difficulty, a_j its discrimination. `fit_2pl` finds the joint MAP of every theta, log a and
b under the priors theta ~ N(0, 1) (which also fixes the scale's origin and unit), log a ~
N(0, 0.5^2) and b ~ N(0, 2^2), by L-BFGS over all of them at once with the analytic gradient.
The priors keep sparse data finite: an item everyone conforms on gets a low b, not b = -inf
(GETA's ablation: plain maximum likelihood drops validity from 0.875 to 0.488).

Why not a library: girth (no release since 2021) fits complete matrices by MML/JML, py-irt
brings Pyro and torch into a module that needs neither, catsim (LGPL) does not calibrate. A joint
MAP over tens of models x thousands of items is one scipy call of about 100 lines, checked by a
parameter-recovery test (tests/adaptive/test_irt.py). L-BFGS-B runs with BLAS held to one thread
(threadpoolctl, which scikit-learn already brings): its vectors are a few thousand long, and
OpenBLAS threads contending for busy cores made a 30 x 300 fit take seconds instead of 50 ms.

Standard errors come from the expected (Fisher) information plus the prior's: for theta with the
items fixed, 1 / sqrt(sum_j a_j^2 P(1 - P) + 1); for each item from the inverse of its 2x2 (log a,
b) block with the abilities fixed, se_a by the delta method (a * se of log a). Item fit is the
Rasch-style infit (information-weighted) and outfit (unweighted) mean square of the residuals
(y - P) / sqrt(P (1 - P)): about 1 for an item that behaves as the model says, above ~1.5 noisy.
No Ray, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from threadpoolctl import threadpool_limits

ITEM_COLUMNS = ("a", "b", "se_a", "se_b", "n_responses", "n_conform", "infit", "outfit", "retired")


@dataclass(frozen=True)
class Priors:
    """The priors of the MAP fit (normal on theta, log a and b)."""

    theta_sd: float = 1.0  # ability ~ N(0, theta_sd^2): sets the scale
    log_a_mean: float = 0.0  # log discrimination ~ N(log_a_mean, log_a_sd^2): a weak pull towards a = 1
    log_a_sd: float = 0.5
    b_sd: float = 2.0  # difficulty ~ N(0, b_sd^2): wide, keeps unanimous items finite


@dataclass(frozen=True)
class RetireRules:
    """When an item no longer separates models on a value."""

    a_floor: float = 0.3  # discrimination below this: the item barely depends on ability
    min_responses: int = 5  # unanimity (all or none conform) counts from this many responses on


@dataclass(frozen=True)
class Fit:
    """A calibration of one value: abilities per model, parameters per item."""

    theta: np.ndarray  # (models,) MAP ability
    theta_se: np.ndarray  # (models,) its standard error (items fixed)
    items: pd.DataFrame  # one row per item: ITEM_COLUMNS ("retired": reason, or "" when active)
    log_posterior: float  # at the optimum (unnormalised)
    converged: bool


def fit_2pl(
    y: np.ndarray,
    priors: Priors = Priors(),
    rules: RetireRules = RetireRules(),
    value: str = "the value",
    max_iter: int = 2000,
) -> Fit:
    """Joint MAP of abilities and item parameters from a models x items matrix of 1/0/NaN outcomes
    on one value (named in the retire reasons)."""
    y = _as_matrix(y)
    observed = ~np.isnan(y)
    n_models, n_items = y.shape
    objective = negative_log_posterior(y, priors)
    with threadpool_limits(limits=1, user_api="blas"):  # see the module docstring
        result = minimize(objective, _start(y, observed), jac=True, method="L-BFGS-B",
                          options={"maxiter": max_iter, "maxfun": 2 * max_iter})
    theta = result.x[:n_models]
    a, b = np.exp(result.x[n_models : n_models + n_items]), result.x[n_models + n_items :]
    items = _item_table(y, observed, theta, a, b, priors, rules, value)
    return Fit(theta=theta, theta_se=_theta_se(theta, a, b, observed, priors.theta_sd),
               items=items, log_posterior=-float(result.fun), converged=bool(result.success))


def negative_log_posterior(y: np.ndarray, priors: Priors = Priors()):
    """The function `fit_2pl` minimises: x = (theta, log a, b) -> (-log posterior up to a constant,
    its gradient), summed over the answers only, so the cost follows responses, not the matrix."""
    n_models, n_items = y.shape
    rows, cols = np.nonzero(~np.isnan(y))
    yv = y[rows, cols]

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        theta, log_a, b = x[:n_models], x[n_models : n_models + n_items], x[n_models + n_items :]
        a = np.exp(log_a)
        a_obs = a[cols]
        z = a_obs * (theta[rows] - b[cols])
        r = expit(z) - yv  # d nll / d z
        nlp = float(np.sum(np.logaddexp(0.0, z) - yv * z)) + _prior_penalty(theta, log_a, b, priors)
        grad = np.concatenate([
            np.bincount(rows, r * a_obs, n_models) + theta / priors.theta_sd**2,
            np.bincount(cols, r * z, n_items) + (log_a - priors.log_a_mean) / priors.log_a_sd**2,
            -a * np.bincount(cols, r, n_items) + b / priors.b_sd**2,
        ])
        return nlp, grad

    return objective


def calibrate(
    outcomes: pd.DataFrame, priors: Priors = Priors(), rules: RetireRules = RetireRules()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`fit_2pl` per value of long outcomes (columns model, item_id, value, conforms as 0/1).

    Returns the abilities (model, value, theta, se, n_responses) and the items (item_id, value and
    ITEM_COLUMNS), the layout `bank.update_calibration` reads. Pairs never asked are simply absent."""
    missing = [c for c in ("model", "item_id", "value", "conforms") if c not in outcomes.columns]
    if missing:
        raise ValueError(f"outcomes lack the column(s) {', '.join(missing)}; "
                         "expected model, item_id, value, conforms")
    repeated = outcomes.duplicated(["model", "item_id", "value"])
    if repeated.any():
        first = outcomes[repeated].iloc[0]
        raise ValueError(f"{int(repeated.sum())} repeated outcomes, e.g. model {first['model']!r}, item "
                         f"{first['item_id']!r}, value {first['value']!r}: give one outcome per triple "
                         "(one sample per prompt)")
    abilities, items = [], []
    for value, part in outcomes.groupby("value", sort=False):
        y = part.pivot(index="model", columns="item_id", values="conforms").astype(float)
        fit = fit_2pl(y.to_numpy(), priors, rules, value=str(value))
        abilities.append(pd.DataFrame({"model": y.index, "value": value, "theta": fit.theta,
                                       "se": fit.theta_se, "n_responses": y.notna().sum(axis=1).to_numpy()}))
        items.append(fit.items.assign(item_id=y.columns.to_numpy(), value=value))
    item_table = pd.concat(items, ignore_index=True) if items else pd.DataFrame(columns=ITEM_COLUMNS)
    item_table = item_table[["item_id", "value", *ITEM_COLUMNS]]
    return pd.concat(abilities, ignore_index=True) if abilities else pd.DataFrame(), item_table


def estimate_ability(
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    prior_sd: float = 1.0,
    method: str = "eap",
) -> tuple[np.ndarray, np.ndarray]:
    """Abilities and SEs of models x items outcomes (NaN = not asked) under fixed item parameters.

    "eap": posterior mean and sd on a grid (stable with a handful of unanimous answers, the usual
    estimator of an adaptive test); "map": posterior mode with the Fisher-information SE.
    A model with no answers gets the prior (0, prior_sd)."""
    y = _as_matrix(y)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if y.shape[1] != len(a) or len(a) != len(b):
        raise ValueError(f"outcomes have {y.shape[1]} items but a has {len(a)} and b {len(b)}")
    observed = ~np.isnan(y)
    if method == "eap":
        return _eap(y, observed, a, b, prior_sd)
    if method == "map":
        theta = _map_theta(y, observed, a, b, prior_sd)
        return theta, _theta_se(theta, a, b, observed, prior_sd)
    raise ValueError(f"unknown ability method {method!r}; available: eap, map")


def retire_reason(a: float, n_responses: int, n_conform: int, value: str, rules: RetireRules) -> str:
    """Why an item is retired on a value ("" while it still separates models)."""
    if n_responses >= rules.min_responses and n_conform in (0, n_responses):
        who = "every one" if n_conform else "none"
        return f"{who} of the {n_responses} models that answered conforms on {value}"
    if a < rules.a_floor:
        return f"discrimination {a:.2f} on {value} is below the floor {rules.a_floor}"
    return ""


def _as_matrix(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim != 2:
        raise ValueError(f"outcomes must be a models x items matrix, got shape {y.shape}")
    bad = ~np.isnan(y) & (y != 0) & (y != 1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"outcomes must be 0, 1 or NaN; model {i}, item {j} is {y[i, j]}")
    return y


def _prior_penalty(theta: np.ndarray, log_a: np.ndarray, b: np.ndarray, priors: Priors) -> float:
    return 0.5 * float(
        np.sum(theta**2) / priors.theta_sd**2
        + np.sum((log_a - priors.log_a_mean) ** 2) / priors.log_a_sd**2
        + np.sum(b**2) / priors.b_sd**2
    )


def _start(y: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Start from smoothed proportions: a model's logit share conforming, an item's negative logit."""
    n_obs_model, n_obs_item = observed.sum(axis=1), observed.sum(axis=0)
    p_model = (np.nansum(y, axis=1) + 0.5) / (n_obs_model + 1.0)
    p_item = (np.nansum(y, axis=0) + 0.5) / (n_obs_item + 1.0)
    theta = np.log(p_model / (1 - p_model))
    theta = (theta - theta.mean()) / (theta.std() or 1.0)
    b = -np.log(p_item / (1 - p_item))
    return np.concatenate([theta, np.zeros(y.shape[1]), b])


def _theta_se(theta: np.ndarray, a: np.ndarray, b: np.ndarray, observed: np.ndarray,
              prior_sd: float) -> np.ndarray:
    p = expit(a * (theta[:, None] - b))
    info = np.sum(np.where(observed, a**2 * p * (1 - p), 0.0), axis=1) + 1.0 / prior_sd**2
    return 1.0 / np.sqrt(info)


def _item_table(y: np.ndarray, observed: np.ndarray, theta: np.ndarray, a: np.ndarray, b: np.ndarray,
                priors: Priors, rules: RetireRules, value: str) -> pd.DataFrame:
    z = a * (theta[:, None] - b)
    p = expit(z)
    w = np.where(observed, p * (1 - p), 0.0)
    # the (log a, b) block of the Fisher information, prior included, inverted per item
    i_la = np.sum(w * z**2, axis=0) + 1.0 / priors.log_a_sd**2
    i_b = a**2 * np.sum(w, axis=0) + 1.0 / priors.b_sd**2
    i_cross = -a * np.sum(w * z, axis=0)
    det = i_la * i_b - i_cross**2
    se_la, se_b = np.sqrt(i_b / det), np.sqrt(i_la / det)
    resid2 = np.where(observed, (np.nan_to_num(y) - p) ** 2, 0.0)
    n = observed.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        infit = np.where(n > 0, resid2.sum(axis=0) / w.sum(axis=0), np.nan)
        outfit = np.where(n > 0, np.sum(np.where(observed, resid2 / np.maximum(w, 1e-12), 0.0), axis=0)
                          / np.maximum(n, 1), np.nan)
    n_conform = np.nansum(y, axis=0).astype(int)
    retired = [retire_reason(float(a[j]), int(n[j]), int(n_conform[j]), value, rules) for j in range(len(a))]
    return pd.DataFrame({"a": a, "b": b, "se_a": a * se_la, "se_b": se_b, "n_responses": n,
                         "n_conform": n_conform, "infit": infit, "outfit": outfit, "retired": retired})


def _map_theta(y: np.ndarray, observed: np.ndarray, a: np.ndarray, b: np.ndarray,
               prior_sd: float, steps: int = 50) -> np.ndarray:
    """Newton's method per model (the log posterior is concave in theta), steps capped at 1."""
    y0 = np.nan_to_num(y)
    theta = np.zeros(y.shape[0])
    for _ in range(steps):
        p = expit(a * (theta[:, None] - b))
        grad = np.sum(np.where(observed, a * (y0 - p), 0.0), axis=1) - theta / prior_sd**2
        hess = np.sum(np.where(observed, a**2 * p * (1 - p), 0.0), axis=1) + 1.0 / prior_sd**2
        step = np.clip(grad / hess, -1.0, 1.0)
        theta = theta + step
        if np.max(np.abs(step)) < 1e-8:
            break
    return theta


_GRID = np.linspace(-6.0, 6.0, 241)


def _eap(y: np.ndarray, observed: np.ndarray, a: np.ndarray, b: np.ndarray,
         prior_sd: float) -> tuple[np.ndarray, np.ndarray]:
    z = a[None, :] * (_GRID[:, None] - b[None, :])  # grid x items
    log_p, log_q = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)
    y0 = np.nan_to_num(y)
    obs = observed.astype(float)
    loglik = (y0 * obs) @ log_p.T + ((1 - y0) * obs) @ log_q.T  # models x grid
    logpost = loglik - 0.5 * (_GRID / prior_sd) ** 2
    post = np.exp(logpost - logpost.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    mean = post @ _GRID
    sd = np.sqrt(np.maximum(post @ _GRID**2 - mean**2, 0.0))
    return mean, sd
