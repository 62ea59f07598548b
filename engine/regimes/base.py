"""One interface for every regime model: fit, filter (causal), smooth (research), forecast.

Models work on NumPy arrays of one symbol's features, `x` of shape (T, F), or on a panel of
many symbols, `x` of shape (N, T, F) with a `valid` mask (N, T) for symbols whose history
is shorter (masked steps carry no observation). States in a fitted `RegimeParams` are
always ordered by the documented rule: ascending volatility of the first feature (the
return), ties broken by ascending mean; `order_states` applies it, and `match_states`
keeps labels stable across refits.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Protocol, get_args

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MODEL_NAMES",
    "FloatArray",
    "ModelName",
    "RegimeModel",
    "RegimeParams",
    "forecast",
    "permute",
]

FloatArray = NDArray[np.float64]
ModelName = Literal["rules", "hmm", "markov_switching", "jump", "changepoint"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)


@dataclass(frozen=True, slots=True)
class RegimeParams:
    """A fitted model of one symbol, states ordered calm to turbulent.

    `means` (K, F) and `variances` (K, F) describe each state's features (diagonal);
    `transmat` (K, K) is row-stochastic, `startprob` (K,) the initial distribution.
    """

    model: str
    features: tuple[str, ...]
    means: FloatArray
    variances: FloatArray
    transmat: FloatArray
    startprob: FloatArray
    loglik: float | None = None
    n_obs: int = 0
    n_params: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_states(self) -> int:
        """Number of regimes K."""
        return int(self.transmat.shape[0])

    @property
    def aic(self) -> float | None:
        """Akaike information criterion (None where the model has no likelihood)."""
        if self.loglik is None:
            return None
        return 2 * self.n_params - 2 * self.loglik

    @property
    def bic(self) -> float | None:
        """Bayesian information criterion (None where the model has no likelihood)."""
        if self.loglik is None or self.n_obs <= 0:
            return None
        return self.n_params * float(np.log(self.n_obs)) - 2 * self.loglik

    @property
    def expected_durations(self) -> FloatArray:
        """Expected bars spent in each regime once entered: 1 / (1 - p_ii)."""
        stay = np.clip(np.diag(self.transmat), 0.0, 1.0 - 1e-12)
        return np.asarray(1.0 / (1.0 - stay), dtype=np.float64)


def permute(params: RegimeParams, order: NDArray[np.int64]) -> RegimeParams:
    """`params` with state `order[i]` renamed to state i."""
    return replace(
        params,
        means=params.means[order],
        variances=params.variances[order],
        transmat=params.transmat[np.ix_(order, order)],
        startprob=params.startprob[order],
    )


def forecast(transmat: FloatArray, probs: FloatArray, steps: int) -> FloatArray:
    """Regime probabilities 1..steps bars ahead of `probs` (K,): row k is p @ A^(k+1)."""
    if steps < 1:
        raise ValueError("forecast steps must be >= 1")
    out = np.empty((steps, transmat.shape[0]))
    current = np.asarray(probs, dtype=np.float64)
    for step in range(steps):  # steps is small (a horizon), K x K products
        current = current @ transmat
        out[step] = current
    return out


class RegimeModel(Protocol):
    """What every regime model offers. Implementations are small, stateless classes whose
    constructor takes the hyper-parameters (number of states, penalties, ...)."""

    name: ClassVar[str]
    n_states: int
    causal_filter: ClassVar[bool]
    """Whether `filter` is a true online filter (False: e.g. offline change points)."""

    def fit(self, x: FloatArray, features: tuple[str, ...]) -> RegimeParams:
        """Parameters fitted on one symbol's features `x` (T, F), states ordered."""
        ...

    def filter(self, params: RegimeParams, x: FloatArray) -> FloatArray:
        """Causal probabilities (T, K): row t uses bars up to t only."""
        ...

    def smooth(self, params: RegimeParams, x: FloatArray) -> FloatArray:
        """Two-sided probabilities (T, K) for research; they use future bars."""
        ...
