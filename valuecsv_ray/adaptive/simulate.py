"""Simulated models and items with known 2PL parameters: the ground truth the estimators are checked on.

    truth = draw_parameters(30, 300, np.random.default_rng(0))
    y = simulate_responses(truth, np.random.default_rng(1), missing=0.5)   # 1/0, NaN = not asked

Used by the parameter-recovery tests and bench/adaptive_items.py. No Ray, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit


@dataclass(frozen=True)
class Truth:
    """Known parameters: each model's ability, each item's discrimination and difficulty."""

    theta: np.ndarray  # (models,)
    a: np.ndarray  # (items,)
    b: np.ndarray  # (items,)


def draw_parameters(
    n_models: int,
    n_items: int,
    rng: np.random.Generator,
    theta_sd: float = 1.0,
    b_sd: float = 1.0,
    log_a_mean: float = 0.0,
    log_a_sd: float = 0.3,
) -> Truth:
    """theta ~ N(0, theta_sd^2), b ~ N(0, b_sd^2), log a ~ N(log_a_mean, log_a_sd^2)."""
    return Truth(theta=rng.normal(0.0, theta_sd, n_models),
                 a=np.exp(rng.normal(log_a_mean, log_a_sd, n_items)),
                 b=rng.normal(0.0, b_sd, n_items))


def conform_probability(theta: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """models x items matrix of P(conforms) = sigmoid(a (theta - b))."""
    return expit(np.asarray(a)[None, :] * (np.asarray(theta)[:, None] - np.asarray(b)[None, :]))


def simulate_responses(truth: Truth, rng: np.random.Generator, missing: float = 0.0) -> np.ndarray:
    """A models x items matrix of Bernoulli outcomes (1.0 conforms, 0.0 violates); a share
    `missing` of the cells, drawn at random, is NaN (not asked)."""
    if not 0.0 <= missing < 1.0:
        raise ValueError(f"missing must be in [0, 1), got {missing}")
    p = conform_probability(truth.theta, truth.a, truth.b)
    y = (rng.random(p.shape) < p).astype(float)
    if missing:
        y[rng.random(p.shape) < missing] = np.nan
    return y
