"""Stable regime identity: a documented order, and matching across refits.

Rule: regime 0..K-1 ascend by the variance of the first feature (the return series), ties
broken by its mean. After a refit, `match_states` relabels the new states to the previous
fit's by minimum total parameter distance (Hungarian algorithm), so "regime 2" keeps its
meaning tomorrow even when two states' volatilities are close enough to swap order.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from engine.regimes.base import FloatArray, RegimeParams, permute

__all__ = ["match_states", "order_states", "state_order"]


def state_order(means: FloatArray, variances: FloatArray) -> np.ndarray:
    """Indices that sort states by ascending variance of feature 0, then ascending mean."""
    return np.lexsort((means[:, 0], variances[:, 0]))


def order_states(params: RegimeParams) -> RegimeParams:
    """`params` with states in the documented order."""
    return permute(params, state_order(params.means, params.variances))


def _signature(params: RegimeParams) -> FloatArray:
    # means in units of each feature's overall spread, plus log-variances: scale-free
    scale = np.sqrt(np.maximum(params.variances.mean(axis=0), 1e-300))
    return np.hstack([params.means / scale, 0.5 * np.log(np.maximum(params.variances, 1e-300))])


def match_states(previous: RegimeParams, current: RegimeParams) -> RegimeParams:
    """`current` relabelled so each state takes the label of the closest previous state."""
    if previous.n_states != current.n_states:
        raise ValueError("cannot match fits with different numbers of states")
    cost = np.linalg.norm(
        _signature(previous)[:, None, :] - _signature(current)[None, :, :], axis=2
    )
    rows, cols = linear_sum_assignment(cost)
    order = cols[np.argsort(rows)]
    return permute(current, order.astype(np.int64))
