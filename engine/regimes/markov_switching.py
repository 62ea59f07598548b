"""`markov_switching`: Hamilton's Markov-switching regression of the return (statsmodels).

- Model: `r_t = mu[s_t] + sigma[s_t] * e_t` on the FIRST feature only (the return), with
  `s_t` a K-state Markov chain (statsmodels `MarkovRegression`, `trend` "c" or "n",
  `switching_variance`). The returned parameters describe that feature alone:
  `features = (features[0],)`, `means`/`variances` (K, 1).
- Fit: the return is rescaled to unit standard deviation (well conditioned for
  statsmodels' optimiser at any bar frequency), EM from two starts (statsmodels' own and
  quantile bins of a 21-bar moving mean square), then statsmodels' BFGS from the better
  one (`maxiter=0`: EM only, ~5x faster for K=3 and within ~0.1 nats of the maximum).
  Parameters are mapped back to the return's own units, so `loglik` (and AIC/BIC) is the
  log-likelihood of the unscaled returns: statsmodels' value on the scaled data plus
  T*log(scale). `n_params` is statsmodels' count of free parameters; `startprob` is its
  steady-state initial distribution; `transmat` is row-stochastic (statsmodels'
  `regime_transition` is its transpose). `extra["converged"]`: whether BFGS converged
  (None when skipped).
- `filter`: the Hamilton filter P(s_t | r_1..t) with the fitted parameters, on any bars
  (a NumPy/numba kernel, equal to statsmodels' filtered probabilities on the fit sample);
  appending bars never changes earlier rows. `smooth`: Kim's smoother P(s_t | all r),
  research only.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, Literal, cast

import numpy as np
from numba import njit
from numpy.typing import ArrayLike
from statsmodels.tools.sm_exceptions import ConvergenceWarning, EstimationWarning
from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

from engine.regimes.base import FloatArray, RegimeParams
from engine.regimes.identity import order_states

__all__ = [
    "MIN_BARS_PER_STATE",
    "MarkovSwitching",
    "checked_returns",
    "hamilton_filter",
    "kim_smoother",
]

MIN_BARS_PER_STATE: Final = 50
"""A fit needs at least this many bars per regime."""
_INIT_WINDOW: Final = 21
_LOG_2PI: Final = math.log(2.0 * math.pi)
_MIN_TRANSITION: Final = 1e-20
"""Transition probabilities are floored here in the filter, as statsmodels does, so a
regime the chain can never enter again cannot make an observation impossible."""


def _kernel[Function: Callable[..., Any]](function: Function) -> Function:
    """`function` compiled with numba (on-disk cache), keeping its signature."""
    return cast(Function, njit(cache=True)(function))


def checked_returns(
    x: ArrayLike, *, min_bars: int = 0, n_features: int | None = None
) -> FloatArray:
    """The first feature column (the return) of `x` (T, F), validated: finite, long enough,
    not constant."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"x must be a non-empty array of shape (T, F); got {array.shape}")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"x has {array.shape[1]} feature columns; expected {n_features}")
    if not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(f"x has NaN or inf at row {row}; drop warm-up rows first")
    if array.shape[0] < min_bars:
        raise ValueError(f"x has {array.shape[0]} bars; fitting needs at least {min_bars}")
    returns = np.ascontiguousarray(array[:, 0])
    if min_bars and not np.ptp(returns) > 0:
        raise ValueError("the return series (feature 0) is constant; no regime can be fitted")
    return returns


@_kernel
def _hamilton_loop(
    log_density: FloatArray, transmat: FloatArray, startprob: FloatArray
) -> tuple[FloatArray, FloatArray, float]:
    # filtered[t] = P(s_t | x_..t), predicted[t] = P(s_t | x_..t-1); emissions shifted by the
    # step's best log density so a far outlier never underflows every state at once
    n_steps, n_states = log_density.shape
    filtered = np.empty((n_steps, n_states))
    predicted = np.empty((n_steps, n_states))
    prior = startprob.copy()
    loglik = 0.0
    for t in range(n_steps):
        predicted[t] = prior
        shift = log_density[t].max()
        joint = prior * np.exp(log_density[t] - shift)
        total = joint.sum()
        filtered[t] = joint / total
        loglik += math.log(total) + shift
        prior = filtered[t] @ transmat
    return filtered, predicted, loglik


@_kernel
def _kim_loop(filtered: FloatArray, predicted: FloatArray, transmat: FloatArray) -> FloatArray:
    # P(s_t | all) = P(s_t | ..t) * sum_j A[s_t, j] P(s_t+1 = j | all) / P(s_t+1 = j | ..t)
    n_steps, n_states = filtered.shape
    smoothed = np.empty((n_steps, n_states))
    smoothed[n_steps - 1] = filtered[n_steps - 1]
    for t in range(n_steps - 2, -1, -1):
        ratio = np.zeros(n_states)
        for j in range(n_states):
            if predicted[t + 1, j] > 0.0:
                ratio[j] = smoothed[t + 1, j] / predicted[t + 1, j]
        row = filtered[t] * (transmat @ ratio)
        smoothed[t] = row / row.sum()
    return smoothed


def _log_density(params: RegimeParams, returns: FloatArray) -> FloatArray:
    """Log density (T, K) of each return under each regime's normal distribution."""
    means, variances = params.means[:, 0], params.variances[:, 0]
    z2 = (returns[:, None] - means[None, :]) ** 2 / variances[None, :]
    return np.asarray(-0.5 * (_LOG_2PI + np.log(variances)[None, :] + z2), dtype=np.float64)


def hamilton_filter(params: RegimeParams, returns: FloatArray) -> tuple[FloatArray, float]:
    """Filtered regime probabilities P(s_t | r_1..t) (T, K) and the log-likelihood."""
    filtered, _, loglik = _hamilton_loop(
        _log_density(params, returns), _floored(params.transmat), params.startprob
    )
    return filtered, float(loglik)


def kim_smoother(params: RegimeParams, returns: FloatArray) -> FloatArray:
    """Smoothed regime probabilities P(s_t | all returns) (T, K): Kim's backward pass."""
    transmat = _floored(params.transmat)
    filtered, predicted, _ = _hamilton_loop(
        _log_density(params, returns), transmat, params.startprob
    )
    smoothed: FloatArray = _kim_loop(filtered, predicted, transmat)
    return smoothed


def _floored(transmat: FloatArray) -> FloatArray:
    return np.ascontiguousarray(np.maximum(transmat, _MIN_TRANSITION))


def _named(model: MarkovRegression, values: FloatArray) -> dict[str, float]:
    return dict(zip(model.param_names, (float(v) for v in values), strict=True))


def _as_vector(
    model: MarkovRegression, transmat: FloatArray, means: FloatArray, variances: FloatArray
) -> FloatArray:
    """statsmodels' parameter vector (scaled units) for a row-stochastic `transmat`."""
    values = []
    for name in model.param_names:
        if match := re.fullmatch(r"p\[(\d+)->(\d+)\]", name):
            values.append(transmat[int(match[1]), int(match[2])])
        elif match := re.fullmatch(r"const\[(\d+)\]", name):
            values.append(means[int(match[1])])
        elif match := re.fullmatch(r"sigma2(?:\[(\d+)\])?", name):
            values.append(variances[int(match[1] or 0)])
        else:  # pragma: no cover - only for statsmodels layouts this module does not build
            raise RuntimeError(f"unexpected statsmodels parameter {name}")
    return np.asarray(values, dtype=np.float64)


def _quantile_start(model: MarkovRegression, scaled: FloatArray, n_states: int) -> FloatArray:
    """EM start: bars binned into equal-count quantiles of their local mean square."""
    window = min(_INIT_WINDOW, scaled.size)
    local = np.convolve(scaled**2, np.ones(window) / window, mode="same")
    ranks = np.argsort(np.argsort(local, kind="stable"), kind="stable")
    bins = ranks * n_states // scaled.size
    counts = np.bincount(bins, minlength=n_states)
    means = np.bincount(bins, weights=scaled, minlength=n_states) / counts
    squares = np.bincount(bins, weights=scaled**2, minlength=n_states) / counts
    variances = np.maximum(squares - means**2, 1e-6)
    stay = 0.95
    transmat = np.full((n_states, n_states), (1 - stay) / (n_states - 1))
    np.fill_diagonal(transmat, stay)
    return _as_vector(model, transmat, means, variances)


@dataclass(slots=True)
class MarkovSwitching:
    """Markov-switching mean/variance model of the return: fit, Hamilton filter, Kim
    smoother."""

    name: ClassVar[str] = "markov_switching"
    causal_filter: ClassVar[bool] = True

    n_states: int = 2
    switching_variance: bool = True
    trend: Literal["c", "n"] = "c"
    em_iter: int = 100
    maxiter: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.n_states, bool) or not isinstance(self.n_states, int):
            raise ValueError("n_states must be an integer")
        if self.n_states < 2:
            raise ValueError(f"n_states must be at least 2; got {self.n_states}")
        if self.trend not in {"c", "n"}:
            raise ValueError(
                f"trend must be 'c' (switching mean) or 'n' (zero mean); got {self.trend!r}"
            )
        self.em_iter, self.maxiter = int(self.em_iter), int(self.maxiter)
        if self.em_iter < 1 or self.maxiter < 0:
            raise ValueError("em_iter must be >= 1 and maxiter >= 0")

    @property
    def min_obs(self) -> int:
        """Fewest bars a fit needs."""
        return MIN_BARS_PER_STATE * self.n_states

    def _model(self, endog: FloatArray) -> MarkovRegression:
        return MarkovRegression(
            endog,
            k_regimes=self.n_states,
            trend=self.trend,
            switching_variance=self.switching_variance,
        )

    def _best_em(self, model: MarkovRegression, scaled: FloatArray) -> FloatArray:
        """statsmodels' EM from each start; the parameters with the highest likelihood."""
        best, best_llf = None, -np.inf
        for start in (model.start_params, _quantile_start(model, scaled, self.n_states)):
            with warnings.catch_warnings():
                # maxiter=0: EM only; statsmodels then warns that BFGS did not converge
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", EstimationWarning)
                params = model.fit(
                    start_params=start, em_iter=self.em_iter, maxiter=0, return_params=True
                )
            llf = float(model.loglike(params))
            if np.isfinite(llf) and llf > best_llf:
                best, best_llf = np.asarray(params, dtype=np.float64), llf
        if best is None:
            raise ValueError("the Markov-switching EM diverged from every start")
        return best

    def fit(self, x: ArrayLike, features: tuple[str, ...]) -> RegimeParams:
        """Fitted regimes of the return (feature 0 of `x` (T, F)), calm regime first."""
        returns = checked_returns(x, min_bars=self.min_obs, n_features=len(features))
        scale = 1.0 / float(np.std(returns))
        model = self._model(returns * scale)
        start = self._best_em(model, returns * scale)
        values, converged = start, None
        if self.maxiter:
            result = model.fit(start_params=start, em_iter=0, maxiter=self.maxiter, cov_type="none")
            converged = bool(result.mle_retvals["converged"])
            if np.isfinite(result.llf) and result.llf >= model.loglike(start):
                values = np.asarray(result.params, dtype=np.float64)
        named = _named(model, values)
        k = self.n_states
        means = np.array([named.get(f"const[{i}]", 0.0) for i in range(k)]) / scale
        sigma2 = [named.get(f"sigma2[{i}]", named.get("sigma2", np.nan)) for i in range(k)]
        variances = np.asarray(sigma2) / scale**2
        if not (np.isfinite(variances).all() and (variances > 0).all()):
            raise ValueError("degenerate Markov-switching fit: a regime has no variance")
        column_stochastic = model.regime_transition_matrix(values)[..., 0]
        params = RegimeParams(
            model=self.name,
            features=features[:1],
            means=means[:, None],
            variances=variances[:, None],
            transmat=np.ascontiguousarray(column_stochastic.T),
            startprob=np.asarray(model.initial_probabilities(values), dtype=np.float64),
            n_obs=returns.size,
            n_params=values.size,
            extra={"converged": converged, "scale": scale},
        )
        _, loglik = hamilton_filter(params, returns)
        return order_states(replace(params, loglik=loglik))

    def filter(self, params: RegimeParams, x: ArrayLike) -> FloatArray:
        """Causal regime probabilities (T, K): row t uses returns up to t only."""
        return hamilton_filter(params, checked_returns(x))[0]

    def smooth(self, params: RegimeParams, x: ArrayLike) -> FloatArray:
        """Two-sided regime probabilities (T, K) for research; they use future bars."""
        return kim_smoother(params, checked_returns(x))
