"""`changepoint`: online change points for monitoring (BOCPD), offline ones for research.

- `bocpd`: Bayesian online change point detection (Adams & MacKay 2007) of a return series
  with a Normal-Gamma model (unknown mean and variance per segment) and a constant hazard
  H = 1/expected segment length. Run length r_t = bars before t in the current segment
  (r_t = 0: bar t opens a new segment); the new-segment branch scores x_t under the prior
  predictive, so P(r_t = 0 | x_..t) is a real "P(change at t)" (in the textbook
  recursion it is identically H). One step is vectorised over the run lengths still
  tracked: those below 1e-12 posterior probability are pruned (and those beyond
  `max_run_length`), so a bar costs O(plausible run lengths), not O(t). Every output at t
  uses bars ..t.
- `offline_change_points` / `segment_statistics`: ruptures (Binseg or Pelt, `normal`,
  `rbf` or `l2` cost) on the standardised series. Offline segmentation sees the whole
  sample: research only.
- `ChangePointModel`: BOCPD segments of the fit sample (each bar's segment as judged at
  the segment's last bar), segments grouped into K volatility levels by a length-weighted
  1-D k-means on their log variance; states are the levels, calm first. `filter` (causal)
  runs BOCPD with the fitted prior and hazard on any bars and reports P(regime k at t) =
  sum over run lengths of P(r_t) * P(segment variance within regime k's band | segment),
  bands split at the geometric midpoints of the regimes' variances. `smooth` (research)
  classifies ruptures' offline segments into the nearest regime by log variance, one-hot.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

import numpy as np
import polars as pl
import ruptures as rpt
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammainc, gammaln

from engine.regimes.base import FloatArray, RegimeParams
from engine.regimes.identity import order_states
from engine.regimes.markov_switching import checked_returns

__all__ = [
    "MIN_BARS_PER_STATE",
    "BocpdResult",
    "ChangePointModel",
    "NormalGammaPrior",
    "bocpd",
    "offline_change_points",
    "segment_statistics",
]

MIN_BARS_PER_STATE: Final = 50
"""A fit needs at least this many bars per state."""
_NEGLIGIBLE: Final = 1e-12
"""Run lengths whose posterior probability falls below this are pruned (Adams & MacKay's
suggestion): the cost per bar follows the plausible run lengths, not all of them."""
IntArray = NDArray[np.int64]
Cost = Literal["normal", "rbf", "l2"]
Method = Literal["binseg", "pelt"]


@dataclass(frozen=True, slots=True)
class NormalGammaPrior:
    """Normal-Gamma prior of a segment's mean and precision: mean ~ N(mean, 1/(kappa tau)),
    tau ~ Gamma(alpha, rate beta)."""

    mean: float
    kappa: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.mean, self.kappa, self.alpha, self.beta)):
            raise ValueError("prior parameters must be finite")
        if min(self.kappa, self.alpha, self.beta) <= 0:
            raise ValueError("prior kappa, alpha and beta must be positive")

    @classmethod
    def from_sample(cls, returns: FloatArray, strength: float = 1.0) -> NormalGammaPrior:
        """A prior worth `strength` bars, centred on the sample's mean and variance."""
        alpha = 1.0 + strength / 2.0  # prior mean of the variance is beta / (alpha - 1)
        variance = float(np.var(returns))
        if not variance > 0:
            raise ValueError("the series is constant; its variance cannot anchor a prior")
        return cls(float(np.mean(returns)), strength, alpha, variance * (alpha - 1.0))

    def posterior_variance(
        self, counts: FloatArray, sums: FloatArray, sq_dev: FloatArray
    ) -> FloatArray:
        """Posterior mean variance of segments with `counts` bars, sums and summed squared
        deviations from their own means (short segments shrink towards the prior)."""
        shift = sums / counts - self.mean
        beta = (
            self.beta + 0.5 * sq_dev + self.kappa * counts * shift**2 / (2 * (self.kappa + counts))
        )
        return np.asarray(beta / (self.alpha + counts / 2 - 1.0))


@dataclass(frozen=True, slots=True)
class BocpdResult:
    """Online change point detection of one series; every entry at t uses bars ..t only."""

    run_length_map: IntArray
    """(T,) most probable run length: bars before t in the current segment."""
    change_prob: FloatArray
    """(T,) P(r_t = 0 | x_..t): probability that bar t opens a new segment."""
    log_evidence: float
    """log p(x_1..T) under the model (summed one-step predictive densities)."""
    run_length_posterior: FloatArray
    """P(r_T-1 = r | all bars), r = 0.. : the latest run-length distribution."""

    @property
    def segment_start(self) -> IntArray:
        """(T,) first bar of the most probable current segment at each t."""
        return np.arange(self.run_length_map.size) - self.run_length_map

    @property
    def current_segment_start(self) -> int:
        """First bar of the most probable segment the latest bar belongs to."""
        return int(self.segment_start[-1])


def _t_constant(alpha: FloatArray) -> FloatArray:
    """The part of the Student-t log density that depends on alpha only."""
    return np.asarray(gammaln(alpha + 0.5) - gammaln(alpha) - 0.5 * math.log(math.pi))


def _log_predictive(
    x: float,
    mean: FloatArray,
    kappa: FloatArray,
    alpha: FloatArray,
    beta: FloatArray,
    *,
    constant: FloatArray | None = None,
) -> FloatArray:
    """Student-t log density of `x` under each Normal-Gamma posterior (`constant`: the
    precomputed `_t_constant(alpha)`)."""
    spread = 2.0 * beta * (kappa + 1.0) / kappa
    offset = _t_constant(alpha) if constant is None else constant
    return np.asarray(
        offset - 0.5 * np.log(spread) - (alpha + 0.5) * np.log1p((x - mean) ** 2 / spread)
    )


def _regime_probs(
    weights: FloatArray, alpha: FloatArray, beta: FloatArray, cuts: FloatArray
) -> FloatArray:
    """P(segment variance in each band) (K,), mixed over run lengths by `weights`."""
    bounds = np.concatenate([[0.0], cuts, [np.inf]])
    with np.errstate(divide="ignore"):
        rate_over_bound = beta[:, None] / bounds[None, :]
    # P(variance <= c) = P(precision >= 1/c) = 1 - P(Gamma(alpha, beta) <= 1/c)
    below = 1.0 - gammainc(alpha[:, None], rate_over_bound)
    probs = weights @ np.diff(below, axis=1)
    return np.asarray(probs / probs.sum(), dtype=np.float64)


def _bocpd_pass(
    returns: FloatArray,
    hazard: float,
    prior: NormalGammaPrior,
    max_run_length: int | None,
    cuts: FloatArray | None,
) -> tuple[BocpdResult, FloatArray | None]:
    """The BOCPD recursion over `returns`; with variance `cuts`, regime probabilities too."""
    n_steps = returns.size
    longest = n_steps - 1 if max_run_length is None else min(n_steps - 1, max_run_length)
    observations = np.arange(1, n_steps + 1, dtype=np.float64)  # bars in run r = 0..T-1
    kappa = prior.kappa + observations
    alpha = prior.alpha + observations / 2.0
    constant = _t_constant(alpha)
    prior_args = [np.array([v]) for v in (prior.mean, prior.kappa, prior.alpha, prior.beta)]
    log_stay, log_change, log_negligible = (
        math.log1p(-hazard),
        math.log(hazard),
        math.log(_NEGLIGIBLE),
    )
    run_length_map = np.zeros(n_steps, dtype=np.int64)
    change_prob = np.ones(n_steps)
    probs = None if cuts is None else np.empty((n_steps, cuts.size + 1))
    lengths = np.zeros(0, dtype=np.int64)  # the run lengths still tracked, ascending
    log_weights, mean, beta = np.zeros(0), np.zeros(0), np.zeros(0)
    log_evidence = 0.0
    for t, x in enumerate(returns):  # sequential by nature; each step is vectorised
        fresh = float(_log_predictive(x, *prior_args)[0]) + (log_change if t else 0.0)
        grown = (
            log_weights
            + log_stay
            + _log_predictive(
                x, mean, kappa[lengths], alpha[lengths], beta, constant=constant[lengths]
            )
        )
        joint = np.concatenate([[fresh], grown])
        peak = joint.max()
        norm = peak + math.log(np.exp(joint - peak).sum())
        log_evidence += norm
        # posteriors after x: the new run from the prior, every other run grown by x
        previous_kappa = np.concatenate([[prior.kappa], kappa[lengths]])
        deviation = x - np.concatenate([[prior.mean], mean])
        mean = x - deviation * previous_kappa / (previous_kappa + 1.0)
        beta = np.concatenate([[prior.beta], beta])
        beta += previous_kappa * deviation**2 / (2.0 * (previous_kappa + 1.0))
        lengths = np.concatenate([[0], lengths + 1])
        keep = (joint - norm > log_negligible) & (lengths <= longest)
        keep[np.argmax(joint)] = True
        lengths, mean, beta = lengths[keep], mean[keep], beta[keep]
        log_weights = joint[keep] - norm
        run_length_map[t] = lengths[np.argmax(log_weights)]
        change_prob[t] = math.exp(log_weights[0]) if lengths[0] == 0 else 0.0
        if probs is not None and cuts is not None:
            probs[t] = _regime_probs(np.exp(log_weights), alpha[lengths], beta, cuts)
    posterior = np.zeros(int(lengths.max()) + 1)
    posterior[lengths] = np.exp(log_weights)
    return BocpdResult(run_length_map, change_prob, log_evidence, posterior), probs


def _checked_series(x: ArrayLike) -> FloatArray:
    """A finite, non-empty 1-D series (a (T, 1) column is accepted)."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"expected a non-empty 1-D series; got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"the series has NaN or inf at row {int(np.argmin(np.isfinite(array)))}")
    return np.ascontiguousarray(array)


def bocpd(
    x: ArrayLike,
    hazard: float = 1 / 250,
    prior: NormalGammaPrior | None = None,
    max_run_length: int | None = None,
) -> BocpdResult:
    """Run-length posterior MAP, P(change at t) and the current segment of the series `x`.

    Without a `prior`, one worth a single bar centred on the series' own mean and
    variance is used (that peeks at the whole sample: pass a fitted prior when monitoring).
    `max_run_length` truncates the posterior (dropping older runs) to bound the cost.
    """
    series = _checked_series(x)
    if not 0 < hazard < 1:
        raise ValueError(f"hazard must be in (0, 1); got {hazard}")
    if max_run_length is not None and max_run_length < 1:
        raise ValueError("max_run_length must be at least 1")
    chosen = prior or NormalGammaPrior.from_sample(series)
    return _bocpd_pass(series, hazard, chosen, max_run_length, None)[0]


def offline_change_points(
    x: ArrayLike,
    penalty: float,
    *,
    cost: Cost = "normal",
    method: Method = "binseg",
    min_size: int = 5,
    jump: int = 1,
) -> list[int]:
    """First bars of every segment after the first (research: uses the whole sample).

    `x` (T,) or (T, F) is standardised per column; `penalty` is ruptures' per change point
    penalty in the cost's units (for `normal`, -2 log-likelihood: 3 log T is BIC-like).
    """
    array = np.asarray(x, dtype=np.float64)
    signal = array[:, None] if array.ndim == 1 else array
    if signal.ndim != 2 or signal.shape[0] < 2 * min_size:
        raise ValueError(f"need a (T,) or (T, F) series of at least {2 * min_size} bars")
    if not np.isfinite(signal).all():
        raise ValueError("the series has NaN or inf values")
    spread = signal.std(axis=0)
    if not (spread > 0).all():
        raise ValueError("the series is constant; it has no change points")
    if not penalty > 0:
        raise ValueError("penalty must be positive")
    algorithm = rpt.Pelt if method == "pelt" else rpt.Binseg
    with warnings.catch_warnings():  # ruptures announces its covariance bias on every use
        warnings.simplefilter("ignore", UserWarning)
        fitted = algorithm(model=cost, min_size=min_size, jump=jump).fit(
            (signal - signal.mean(axis=0)) / spread
        )
        ends = fitted.predict(pen=penalty)
    return [int(end) for end in ends[:-1]]


def segment_statistics(x: ArrayLike, change_points: list[int]) -> pl.DataFrame:
    """Per segment: start, end (exclusive), n_bars, mean and volatility of the series."""
    series = _checked_series(x)
    starts = np.array([0, *sorted(change_points)], dtype=np.int64)
    if (np.diff(starts) <= 0).any() or starts[-1] >= series.size:
        raise ValueError("change points must be distinct bars inside the series")
    ends = np.append(starts[1:], series.size)
    counts = ends - starts
    sums = np.add.reduceat(series, starts)
    squares = np.add.reduceat(series**2, starts)
    means = sums / counts
    return pl.DataFrame(
        {
            "start": starts,
            "end": ends,
            "n_bars": counts,
            "mean": means,
            "volatility": np.sqrt(np.maximum(squares / counts - means**2, 0.0)),
        }
    )


def _segments_at_their_ends(run_length_map: IntArray) -> IntArray:
    """Segment id of every bar: walking back from the last bar, each segment as judged by
    the MAP run length at its own last bar."""
    starts = []
    t = run_length_map.size - 1
    while t >= 0:  # one step per segment, not per bar
        start = t - int(run_length_map[t])
        starts.append(start)
        t = start - 1
    return np.searchsorted(np.array(starts[::-1]), np.arange(run_length_map.size), "right") - 1


def _weighted_levels(values: FloatArray, weights: FloatArray, n_levels: int) -> IntArray:
    """Level (0 = lowest) of every value: length-weighted 1-D k-means from quantile seeds."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    seeds = (np.arange(n_levels) + 0.5) / n_levels
    centers = values[order][np.searchsorted(cumulative, seeds)]
    labels = np.full(values.size, -1, dtype=np.int64)
    for _ in range(100):
        fitted = np.abs(values[:, None] - centers[None, :]).argmin(axis=1)
        if np.array_equal(fitted, labels):
            break
        labels = fitted
        mass = np.bincount(labels, weights=weights, minlength=n_levels)
        sums = np.bincount(labels, weights=weights * values, minlength=n_levels)
        centers = np.where(mass > 0, sums / np.maximum(mass, 1e-300), centers)
    return labels


def _variance_cuts(params: RegimeParams) -> tuple[FloatArray, IntArray]:
    """Band edges between the regimes' variances (geometric midpoints) and the regime of
    each band, lowest band first."""
    order = np.argsort(params.variances[:, 0], kind="stable")
    ascending = params.variances[order, 0]
    return np.sqrt(ascending[:-1] * ascending[1:]), order


@dataclass(slots=True)
class ChangePointModel:
    """Volatility regimes from change point segments: BOCPD filter, offline smoother."""

    name: ClassVar[str] = "changepoint"
    causal_filter: ClassVar[bool] = True

    n_states: int = 2
    hazard: float = 1 / 250
    prior_strength: float = 1.0
    max_run_length: int | None = None
    penalty: float | None = None
    offline_method: Method = "binseg"

    def __post_init__(self) -> None:
        if isinstance(self.n_states, bool) or not isinstance(self.n_states, int):
            raise ValueError("n_states must be an integer")
        if self.n_states < 2:
            raise ValueError(f"n_states must be at least 2; got {self.n_states}")
        self.hazard, self.prior_strength = float(self.hazard), float(self.prior_strength)
        if not 0 < self.hazard < 1:
            raise ValueError(f"hazard must be in (0, 1); got {self.hazard}")
        if self.max_run_length is not None and not int(self.max_run_length) >= 1:
            raise ValueError("max_run_length must be at least 1 (or None)")
        if not self.prior_strength > 0:
            raise ValueError("prior_strength must be positive")
        if self.penalty is not None and not float(self.penalty) > 0:
            raise ValueError("penalty must be positive (or None for 3 log T)")

    @property
    def min_obs(self) -> int:
        """Fewest bars a fit needs."""
        return MIN_BARS_PER_STATE * self.n_states

    def fit(self, x: ArrayLike, features: tuple[str, ...]) -> RegimeParams:
        """Volatility regimes of the return (feature 0 of `x` (T, F)), calm regime first."""
        returns = checked_returns(x, min_bars=self.min_obs, n_features=len(features))
        prior = NormalGammaPrior.from_sample(returns, self.prior_strength)
        online, _ = _bocpd_pass(returns, self.hazard, prior, self.max_run_length, None)
        segment = _segments_at_their_ends(online.run_length_map)
        counts = np.bincount(segment).astype(np.float64)
        sums = np.bincount(segment, weights=returns)
        sq_dev = np.bincount(segment, weights=(returns - (sums / counts)[segment]) ** 2)
        log_variance = np.log(prior.posterior_variance(counts, sums, sq_dev))
        level = _weighted_levels(log_variance, counts, self.n_states)[segment]
        k = self.n_states
        bars = np.bincount(level, minlength=k)
        if (bars < 2).any():
            raise ValueError(
                f"BOCPD segments fell into only {(bars >= 2).sum()} of {k} volatility levels; "
                "lower n_states or raise hazard"
            )
        means = np.bincount(level, weights=returns, minlength=k) / bars
        variances = np.bincount(level, weights=returns**2, minlength=k) / bars - means**2
        transitions = np.ones((k, k))
        np.add.at(transitions, (level[:-1], level[1:]), 1.0)
        params = RegimeParams(
            model=self.name,
            features=features[:1],
            means=means[:, None],
            variances=np.maximum(variances, 1e-300)[:, None],
            transmat=transitions / transitions.sum(axis=1, keepdims=True),
            startprob=(bars + 1.0) / (bars.sum() + k),
            n_obs=int(returns.size),
            n_params=2 * k,
            extra={
                "hazard": float(self.hazard),
                "prior": [prior.mean, prior.kappa, prior.alpha, prior.beta],
                "n_segments": int(counts.size),
                "log_evidence": online.log_evidence,
            },
        )
        return order_states(params)

    def filter(self, params: RegimeParams, x: ArrayLike) -> FloatArray:
        """Causal regime probabilities (T, K) from BOCPD: row t uses bars up to t only."""
        returns = checked_returns(x)
        prior = NormalGammaPrior(*(float(v) for v in params.extra["prior"]))
        cuts, band_regime = _variance_cuts(params)
        hazard = float(params.extra["hazard"])
        _, by_band = _bocpd_pass(returns, hazard, prior, self.max_run_length, cuts)
        assert by_band is not None
        probs = np.empty_like(by_band)
        probs[:, band_regime] = by_band
        return probs

    def smooth(self, params: RegimeParams, x: ArrayLike) -> FloatArray:
        """Two-sided regimes (T, K), one-hot, for research: ruptures' offline segments, each
        assigned to the regime nearest its variance (log scale)."""
        returns = checked_returns(x)
        penalty = self.penalty or 3.0 * math.log(returns.size)
        points = offline_change_points(returns, penalty, method=self.offline_method)
        stats = segment_statistics(returns, points)
        log_variance = np.log(np.maximum(stats["volatility"].to_numpy() ** 2, 1e-300))
        distance = np.abs(log_variance[:, None] - np.log(params.variances[:, 0])[None, :])
        regime = np.repeat(distance.argmin(axis=1), stats["n_bars"].to_numpy())
        return np.asarray(np.eye(params.n_states)[regime])
