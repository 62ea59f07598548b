"""`jump`: statistical jump model, k-means over time with a price on every regime switch.

Nystrup, Lindström & Madsen (2020), "Learning hidden Markov models with persistent states
by penalizing jumps": the fit minimises

    sum_t ||z_t - mu[s_t]||^2  +  jump_penalty * #{t : s_t != s_t-1}

over centroids `mu` and the state sequence `s`, alternating (a) centroids = mean of each
state's bars and (b) the optimal sequence for fixed centroids by dynamic programming
(O(T K) with a constant penalty, a numba kernel), from `n_init` k-means++ starts; the
lowest objective wins.

- Clustered features `z`: with `return_halflives` (default (2,)) the raw return (feature 0)
  is replaced by its causal log volatility, log sqrt of the exponentially weighted mean
  square of returns up to t, one column per half-life (the raw return's sign only adds
  noise to the distances; volatility regimes are multiplicative, hence the log). Other
  given features are clustered as they are; with `return_halflives=()` every given
  feature is. Each column is standardised with the fit sample's mean and standard
  deviation, so `jump_penalty` is in squared standardised units: a switch must pay for
  itself with that much lower loss (smaller: faster, noisier switches).
- Parameters: `features` = the given features plus the derived log volatilities, and
  `means`/`variances` describe every state in those features' own units (feature 0 is
  still the return, which the state order uses). `transmat`: transitions of the fitted
  sequence with one pseudo-count per cell; `startprob`: each state's share of the fit
  sample (one pseudo-count). No likelihood, so `loglik` (and AIC/BIC) is None;
  `extra["objective"]` is the minimised objective.
- `filter` (causal): the online assignment, the last step of the forward DP: at bar t, the
  end state of the cheapest sequence over bars ..t (no backtracking). One-hot by default;
  with a `temperature` tau, softmax(-(V_t - min V_t) / tau) of the forward DP costs V_t.
- `smooth` (research): the backtracked optimal sequence over all bars, one-hot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from engine.regimes.base import FloatArray, RegimeParams
from engine.regimes.identity import order_states
from engine.regimes.markov_switching import checked_returns

__all__ = ["MIN_BARS_PER_STATE", "JumpModel", "volatility_features"]

MIN_BARS_PER_STATE: Final = 50
"""A fit needs at least this many bars per state."""
_VOL_FLOOR: Final = 1e-5
"""Volatilities below this (return units) are floored before the log: a run of zero
returns would otherwise send the log volatility towards minus infinity."""
IntArray = NDArray[np.int64]


def _kernel[Function: Callable[..., Any]](function: Function) -> Function:
    """`function` compiled with numba (on-disk cache), keeping its signature."""
    return cast(Function, njit(cache=True)(function))


@_kernel
def _forward_costs(loss: FloatArray, penalty: float) -> tuple[FloatArray, IntArray]:
    # cost[t, k]: cheapest sequence over bars ..t ending in k; previous[t, k]: its state at t-1
    n_steps, n_states = loss.shape
    cost = np.empty((n_steps, n_states))
    previous = np.zeros((n_steps, n_states), dtype=np.int64)
    cost[0] = loss[0]
    for t in range(1, n_steps):
        best = int(np.argmin(cost[t - 1]))
        switch = cost[t - 1, best] + penalty
        for k in range(n_states):
            if cost[t - 1, k] <= switch:
                cost[t, k] = loss[t, k] + cost[t - 1, k]
                previous[t, k] = k
            else:
                cost[t, k] = loss[t, k] + switch
                previous[t, k] = best
    return cost, previous


@_kernel
def _backtrack(cost: FloatArray, previous: IntArray) -> IntArray:
    n_steps = cost.shape[0]
    states = np.empty(n_steps, dtype=np.int64)
    states[n_steps - 1] = np.argmin(cost[n_steps - 1])
    for t in range(n_steps - 1, 0, -1):
        states[t - 1] = previous[t, states[t]]
    return states


def _squared_distances(z: FloatArray, centroids: FloatArray) -> FloatArray:
    """Squared Euclidean distance (T, K) of every bar to every centroid."""
    return np.asarray(((z[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2))


def _optimal_sequence(loss: FloatArray, penalty: float) -> tuple[IntArray, float]:
    """The state sequence minimising loss + penalty * jumps, and that minimum."""
    cost, previous = _forward_costs(loss, penalty)
    states: IntArray = _backtrack(cost, previous)
    return states, float(cost[-1].min())


def _state_means(z: FloatArray, states: IntArray, fallback: FloatArray) -> FloatArray:
    """Mean of each state's bars (K, D); a state without bars keeps its `fallback` row."""
    n_states = fallback.shape[0]
    counts = np.bincount(states, minlength=n_states).astype(np.float64)
    sums = np.zeros_like(fallback)
    np.add.at(sums, states, z)
    return np.where(counts[:, None] > 0, sums / np.maximum(counts, 1.0)[:, None], fallback)


def _kmeans_plus_plus(z: FloatArray, n_states: int, rng: np.random.Generator) -> FloatArray:
    """k-means++ seeds: each next centroid drawn with probability ~ squared distance."""
    centroids = [z[rng.integers(z.shape[0])]]
    for _ in range(1, n_states):
        nearest = _squared_distances(z, np.asarray(centroids)).min(axis=1)
        total = nearest.sum()
        pick = rng.choice(z.shape[0], p=nearest / total) if total > 0 else rng.integers(z.shape[0])
        centroids.append(z[pick])
    return np.asarray(centroids)


@_kernel
def _exponential_mean(values: FloatArray, decay: float) -> FloatArray:
    # m_t = decay * m_t-1 + (1 - decay) * v_t, started at v_0
    means = np.empty_like(values)
    current = values[0]
    for t in range(values.size):
        current = decay * current + (1.0 - decay) * values[t]
        means[t] = current
    return means


def volatility_features(returns: FloatArray, halflives: tuple[float, ...]) -> FloatArray:
    """Causal log volatility of the return (T, H): log sqrt of the exponentially weighted
    mean square of returns up to t, one column per half-life (in bars)."""
    squares = np.ascontiguousarray(returns**2, dtype=np.float64)
    columns = [_exponential_mean(squares, 0.5 ** (1.0 / halflife)) for halflife in halflives]
    if not columns:
        return np.empty((returns.size, 0))
    return np.asarray(0.5 * np.log(np.maximum(np.column_stack(columns), _VOL_FLOOR**2)))


def _described(x: ArrayLike, halflives: tuple[float, ...], n_features: int) -> FloatArray:
    """The features the states describe (T, F + H): the given ones, then the return's log
    volatility for each half-life."""
    returns = checked_returns(x, n_features=n_features)
    array = np.asarray(x, dtype=np.float64)
    return np.hstack([array, volatility_features(returns, halflives)]) if halflives else array


def _clustered_columns(n_columns: int, halflives: tuple[float, ...]) -> IntArray:
    """Columns the distances use: all but the raw return when it has volatility columns."""
    return np.arange(1 if halflives else 0, n_columns, dtype=np.int64)


@dataclass(slots=True)
class JumpModel:
    """Statistical jump model: persistent k-means states, online DP filter, DP smoother."""

    name: ClassVar[str] = "jump"
    causal_filter: ClassVar[bool] = True

    n_states: int = 2
    jump_penalty: float = 5.0
    n_init: int = 10
    max_iter: int = 100
    seed: int = 0
    return_halflives: tuple[float, ...] = (2.0,)
    temperature: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_states, bool) or not isinstance(self.n_states, int):
            raise ValueError("n_states must be an integer")
        if self.n_states < 2:
            raise ValueError(f"n_states must be at least 2; got {self.n_states}")
        self.jump_penalty = float(self.jump_penalty)
        self.n_init, self.max_iter, self.seed = int(self.n_init), int(self.max_iter), int(self.seed)
        if not (np.isfinite(self.jump_penalty) and self.jump_penalty >= 0):
            raise ValueError(f"jump_penalty must be a finite number >= 0; got {self.jump_penalty}")
        if self.n_init < 1 or self.max_iter < 1:
            raise ValueError("n_init and max_iter must be at least 1")
        self.return_halflives = tuple(float(h) for h in self.return_halflives)
        if not all(np.isfinite(h) and h > 0 for h in self.return_halflives):
            raise ValueError("return_halflives must be positive numbers of bars")
        if self.temperature is not None and not float(self.temperature) > 0:
            raise ValueError("temperature must be positive (or None for one-hot states)")

    @property
    def min_obs(self) -> int:
        """Fewest bars a fit needs."""
        return MIN_BARS_PER_STATE * self.n_states

    def _best_sequence(self, z: FloatArray) -> tuple[IntArray, float]:
        """The lowest-objective state sequence over `n_init` k-means++ starts."""
        rng = np.random.default_rng(self.seed)
        best_states, best_objective = np.zeros(z.shape[0], dtype=np.int64), np.inf
        for _ in range(self.n_init):
            centroids = _kmeans_plus_plus(z, self.n_states, rng)
            states = np.full(z.shape[0], -1, dtype=np.int64)
            for _ in range(self.max_iter):
                fitted, objective = _optimal_sequence(
                    _squared_distances(z, centroids), self.jump_penalty
                )
                if np.array_equal(fitted, states):
                    break
                states = fitted
                centroids = _state_means(z, states, centroids)
            if objective < best_objective:
                best_states, best_objective = states, objective
        return best_states, best_objective

    def fit(self, x: ArrayLike, features: tuple[str, ...]) -> RegimeParams:
        """Fitted persistent states of the features `x` (T, F), calm state first."""
        checked_returns(x, min_bars=self.min_obs, n_features=len(features))
        halflives = self.return_halflives
        described = _described(x, halflives, len(features))
        used = _clustered_columns(described.shape[1], halflives)
        center, scale = described.mean(axis=0), described.std(axis=0)
        if not (scale[used] > 0).all():
            column = int(used[np.flatnonzero(~(scale[used] > 0))[0]])
            raise ValueError(f"clustered feature {column} is constant; no state can be fitted")
        states, objective = self._best_sequence((described[:, used] - center[used]) / scale[used])
        k = self.n_states
        counts = np.bincount(states, minlength=k)
        if (counts < 2).any():
            raise ValueError(
                f"the jump model used only {(counts >= 2).sum()} of {k} states; "
                "lower jump_penalty or n_states"
            )
        zeros = np.zeros((k, described.shape[1]))
        means = _state_means(described, states, zeros)
        squares = _state_means(described**2, states, zeros)
        transitions = np.ones((k, k))
        np.add.at(transitions, (states[:-1], states[1:]), 1.0)
        params = RegimeParams(
            model=self.name,
            features=(*features, *(f"{features[0]}_log_vol_hl{h:g}" for h in halflives)),
            means=means,
            variances=np.maximum(squares - means**2, 0.0),
            transmat=transitions / transitions.sum(axis=1, keepdims=True),
            startprob=(counts + 1.0) / (counts.sum() + k),
            n_obs=int(states.size),
            n_params=int(k * used.size),
            extra={
                "objective": objective,
                "n_jumps": int((states[1:] != states[:-1]).sum()),
                "jump_penalty": float(self.jump_penalty),
                "return_halflives": list(halflives),
                "feature_center": center.tolist(),
                "feature_scale": scale.tolist(),
            },
        )
        return order_states(params)

    def filter(self, params: RegimeParams, x: ArrayLike) -> FloatArray:
        """Causal state probabilities (T, K): the online DP assignment, bars up to t only."""
        cost, _ = _forward_costs(_loss(params, x), float(params.extra["jump_penalty"]))
        relative = cost - cost.min(axis=1, keepdims=True)
        if self.temperature is None:
            return np.asarray(np.eye(params.n_states)[relative.argmin(axis=1)])
        weights = np.exp(-relative / self.temperature)
        return np.asarray(weights / weights.sum(axis=1, keepdims=True))

    def smooth(self, params: RegimeParams, x: ArrayLike) -> FloatArray:
        """Two-sided states (T, K), one-hot, for research: the optimal sequence of all bars."""
        states, _ = _optimal_sequence(_loss(params, x), float(params.extra["jump_penalty"]))
        return np.asarray(np.eye(params.n_states)[states])


def _loss(params: RegimeParams, x: ArrayLike) -> FloatArray:
    """Squared standardised distance (T, K) of every bar to every fitted state's centroid."""
    halflives = tuple(float(h) for h in params.extra["return_halflives"])
    described = _described(x, halflives, len(params.features) - len(halflives))
    used = _clustered_columns(described.shape[1], halflives)
    center = np.asarray(params.extra["feature_center"], dtype=np.float64)[used]
    scale = np.asarray(params.extra["feature_scale"], dtype=np.float64)[used]
    z = (described[:, used] - center) / scale
    return _squared_distances(z, (params.means[:, used] - center) / scale)
