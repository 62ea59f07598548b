"""`hmm`: Gaussian hidden Markov model with diagonal covariances, fitted by Baum-Welch EM.

- Fit: EM with scaled forward-backward (numba kernels in `_hmm_kernels`), per-symbol
  convergence with hmmlearn's rule: stop after the first iteration whose log-likelihood
  gain is below `tol` (absolute, in nats over the whole series). With the same start
  parameters, `n_iter` and `tol`, the fit matches hmmlearn's `GaussianHMM(covariance_type=
  "diag", covars_prior=0)`; unlike hmmlearn, variances are only floored at `min_variance`
  (hmmlearn's default covariance prior of 1e-2 would swamp daily-return variances ~1e-4).
- Initialisation (deterministic): every valid step is binned into K equal-count quantile
  bins of a centred 21-bar moving average of (feature 0 - its median)^2, i.e. local
  dispersion of the return; each bin gives a state's means and variances, bin-to-bin moves
  (plus one pseudo-count) the transition matrix, and the start distribution is uniform.
- Identity: returned states follow `order_states` (calm first); `loglik` is the
  log-likelihood of the returned parameters, `n_params = K-1 + K(K-1) + 2KF`.
- Causality: `filter` is the forward filter P(s_t | x_1..t); appending bars never changes
  earlier rows. `smooth` (P(s_t | all x), research only) uses future bars.
- Panels: `x` (N, T, F) with `valid` (N, T). A symbol's chain starts at its first valid
  step (left padding is skipped); later invalid steps carry no observation. Symbols are
  fitted in parallel threads, each with its own EM loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Final

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from engine.regimes import _hmm_kernels as kernels
from engine.regimes.base import FloatArray, RegimeParams
from engine.regimes.identity import order_states

__all__ = ["INIT_WINDOW", "MIN_OBS_PER_STATE", "THREADS", "GaussianHMM", "n_free_parameters"]

MIN_OBS_PER_STATE: Final = 10
"""A fit needs at least this many valid observations per state."""
INIT_WINDOW: Final = 21
"""Bars in the moving dispersion window that bins observations for the EM start."""

THREADS: Final = int(numba.get_num_threads())
"""Threads that share a panel's symbols (numba's setting: NUMBA_NUM_THREADS, else all cores)."""

BoolArray = NDArray[np.bool_]
_PosteriorKernel = Callable[
    [FloatArray, BoolArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray],
    None,
]


def n_free_parameters(n_states: int, n_features: int) -> int:
    """Free parameters of a diagonal Gaussian HMM: start, transitions, means and variances."""
    return n_states - 1 + n_states * (n_states - 1) + 2 * n_states * n_features


@dataclass(frozen=True, slots=True)
class _StackedParams:
    """Parameters of N symbols as contiguous arrays, the layout the kernels work on."""

    means: FloatArray  # (N, K, F)
    variances: FloatArray  # (N, K, F)
    transmat: FloatArray  # (N, K, K)
    startprob: FloatArray  # (N, K)

    @classmethod
    def of(cls, params_list: Sequence[RegimeParams], n_features: int) -> _StackedParams:
        """Copies of the given parameters, checked for one common shape."""
        if not params_list:
            raise ValueError("no parameters given")
        n_states = params_list[0].n_states
        for index, params in enumerate(params_list):
            expected = {
                "means": (n_states, n_features),
                "variances": (n_states, n_features),
                "transmat": (n_states, n_states),
                "startprob": (n_states,),
            }
            for name, shape in expected.items():
                actual = np.shape(getattr(params, name))
                if actual != shape:
                    raise ValueError(f"parameters {index}: {name} has shape {actual}, not {shape}")
            if not all(np.isfinite(getattr(params, name)).all() for name in expected):
                raise ValueError(f"parameters {index}: NaN or inf in the parameters")
            if not (np.asarray(params.variances) > 0).all():
                raise ValueError(f"parameters {index}: variances must be positive")

        def stack(name: str) -> FloatArray:
            arrays = [np.asarray(getattr(p, name), dtype=np.float64) for p in params_list]
            return np.ascontiguousarray(np.stack(arrays))

        return cls(stack("means"), stack("variances"), stack("transmat"), stack("startprob"))

    def params(
        self,
        index: int,
        features: tuple[str, ...],
        *,
        n_obs: int,
        loglik: float | None = None,
        extra: dict[str, object] | None = None,
    ) -> RegimeParams:
        """Symbol `index`'s parameters as a `RegimeParams` (states in kernel order)."""
        n_states, n_features = self.means.shape[1:]
        return RegimeParams(
            model=GaussianHMM.name,
            features=features,
            means=self.means[index].copy(),
            variances=self.variances[index].copy(),
            transmat=self.transmat[index].copy(),
            startprob=self.startprob[index].copy(),
            loglik=loglik,
            n_obs=n_obs,
            n_params=n_free_parameters(n_states, n_features),
            extra=dict(extra or {}),
        )


def _over_symbols(n_symbols: int, run: Callable[[slice], None]) -> None:
    """Call `run` on chunks of symbols in parallel threads (the kernels release the GIL)."""
    threads = min(THREADS, n_symbols)
    if threads <= 1:
        run(slice(0, n_symbols))
        return
    # about 8 chunks per thread, so symbols whose EM runs long do not leave a thread idle
    size = -(-n_symbols // (8 * threads))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(run, [slice(lo, lo + size) for lo in range(0, n_symbols, size)]))


def _who(index: int, single: bool) -> str:
    return "x" if single else f"symbol {index}"


def _checked_panel(
    x: ArrayLike,
    valid: ArrayLike | None,
    *,
    single: bool,
    n_features: int | None = None,
    min_obs: int = 0,
) -> tuple[FloatArray, BoolArray]:
    """Features (N, T, F) as contiguous float64 with invalid rows zeroed, and the mask."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 3 or 0 in array.shape:
        expected = "(T, F): one row per bar, one column per feature" if single else "(N, T, F)"
        shape = array.shape[1:] if single else array.shape
        raise ValueError(f"x must be a non-empty array of shape {expected}; got {shape}")
    n_symbols, n_steps, width = array.shape
    if n_features is not None and width != n_features:
        raise ValueError(f"x has {width} feature columns; expected {n_features}")
    if valid is None:
        mask = np.ones((n_symbols, n_steps), dtype=np.bool_)
    else:
        mask = np.asarray(valid)
        if mask.dtype != np.bool_ or mask.shape != (n_symbols, n_steps):
            raise ValueError(f"valid must be a bool array of shape {(n_symbols, n_steps)}")
    bad = mask & ~np.isfinite(array).all(axis=2)
    if bad.any():
        symbol, step = (int(i[0]) for i in np.nonzero(bad))
        raise ValueError(
            f"{_who(symbol, single)} has NaN or inf at row {step}"
            + ("" if single else " (mark missing bars invalid in `valid` instead)")
        )
    counts = mask.sum(axis=1)
    if (short := np.flatnonzero(counts < min_obs)).size:
        symbol = int(short[0])
        raise ValueError(
            f"{_who(symbol, single)} has {counts[symbol]} valid observations; fitting needs "
            f"at least {min_obs} ({MIN_OBS_PER_STATE} per state)"
        )
    return np.ascontiguousarray(np.where(mask[:, :, None], array, 0.0)), np.ascontiguousarray(mask)


def _check_not_constant(x: FloatArray, valid: BoolArray, *, single: bool) -> None:
    """Raise when a feature takes a single value over a symbol's valid rows."""
    highest = np.where(valid[:, :, None], x, -np.inf).max(axis=1)
    lowest = np.where(valid[:, :, None], x, np.inf).min(axis=1)
    if (flat := np.argwhere(highest <= lowest)).size:
        symbol, feature = (int(v) for v in flat[0])
        raise ValueError(
            f"{_who(symbol, single)}: feature {feature} is constant (zero variance); "
            "a Gaussian state cannot be fitted to it"
        )


@dataclass(slots=True)
class GaussianHMM:
    """Gaussian HMM with diagonal covariances: fit, causal filter, smoother, panels.

    `seed` is part of the common model interface; the initialisation is a deterministic
    quantile binning (ties broken by time), so fits do not depend on it.
    """

    name: ClassVar[str] = "hmm"
    causal_filter: ClassVar[bool] = True

    n_states: int = 2
    n_iter: int = 100
    tol: float = 1e-4
    min_variance: float = 1e-8
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.n_states, bool) or not isinstance(self.n_states, int | np.integer):
            raise ValueError(f"n_states must be an integer; got {self.n_states!r}")
        self.n_states = int(self.n_states)
        if self.n_states < 2:
            raise ValueError(f"n_states must be at least 2; got {self.n_states}")
        if self.n_iter < 1:
            raise ValueError(f"n_iter must be at least 1; got {self.n_iter}")
        if not np.isfinite(self.tol) or self.tol < 0:
            raise ValueError(f"tol must be a finite number >= 0; got {self.tol}")
        if not self.min_variance > 0:
            raise ValueError(f"min_variance must be positive; got {self.min_variance}")

    @property
    def min_obs(self) -> int:
        """Fewest valid observations a symbol needs to be fitted."""
        return MIN_OBS_PER_STATE * self.n_states

    def _fit_input(
        self, x: ArrayLike, features: tuple[str, ...], valid: ArrayLike | None, *, single: bool
    ) -> tuple[FloatArray, BoolArray]:
        """Validated fit input: features (N, T, F) and validity mask (N, T)."""
        array, mask = _checked_panel(
            x, valid, single=single, n_features=len(features), min_obs=self.min_obs
        )
        _check_not_constant(array, mask, single=single)
        return array, mask

    def _initial(self, x: FloatArray, valid: BoolArray) -> _StackedParams:
        """EM starting parameters of every symbol (quantile bins of local dispersion)."""
        return _StackedParams(
            *kernels.initial_params(x, valid, self.n_states, INIT_WINDOW, self.min_variance)
        )

    def initial_params(self, x: ArrayLike, features: tuple[str, ...]) -> RegimeParams:
        """EM starting parameters for one symbol's features `x` (T, F), in bin order."""
        array, mask = self._fit_input(np.asarray(x)[None], features, None, single=True)
        return self._initial(array, mask).params(0, features, n_obs=int(mask.sum()))

    def initial_params_panel(
        self, x: ArrayLike, features: tuple[str, ...], valid: ArrayLike | None = None
    ) -> list[RegimeParams]:
        """EM starting parameters for every symbol of the panel `x` (N, T, F), in bin order."""
        array, mask = self._fit_input(x, features, valid, single=False)
        start = self._initial(array, mask)
        return [
            start.params(n, features, n_obs=int(count)) for n, count in enumerate(mask.sum(axis=1))
        ]

    def fit(
        self, x: ArrayLike, features: tuple[str, ...], init: RegimeParams | None = None
    ) -> RegimeParams:
        """Fitted regimes of one symbol's features `x` (T, F), calm state first.

        `init` replaces the quantile initialisation as the EM starting point.
        """
        array, mask = self._fit_input(np.asarray(x)[None], features, None, single=True)
        return self._fit(array, mask, features, None if init is None else [init])[0]

    def fit_panel(
        self,
        x: ArrayLike,
        features: tuple[str, ...],
        valid: ArrayLike | None = None,
        init: Sequence[RegimeParams] | None = None,
    ) -> list[RegimeParams]:
        """Fitted regimes of every symbol in the panel `x` (N, T, F), calm state first.

        `valid` (N, T) marks real bars (default: all); `init` gives each symbol's EM
        starting point instead of the quantile initialisation. `extra` holds `n_iter` (EM
        iterations run) and `converged` (gain fell below `tol` before `n_iter`).
        """
        array, mask = self._fit_input(x, features, valid, single=False)
        return self._fit(array, mask, features, init)

    def _fit(
        self,
        array: FloatArray,
        mask: BoolArray,
        features: tuple[str, ...],
        init: Sequence[RegimeParams] | None,
    ) -> list[RegimeParams]:
        """Fitted, ordered parameters of every symbol of validated panel input."""
        n_symbols, _, n_features = array.shape
        if init is None:
            fitted = self._initial(array, mask)
        else:
            if len(init) != n_symbols:
                raise ValueError(f"init has {len(init)} parameter sets for {n_symbols} symbols")
            if any(p.n_states != self.n_states for p in init):
                raise ValueError(f"init parameters must have n_states={self.n_states}")
            fitted = _StackedParams.of(init, n_features)
        loglik = np.empty(n_symbols)
        iterations = np.empty(n_symbols, dtype=np.int64)
        converged = np.empty(n_symbols, dtype=np.bool_)

        def run(chunk: slice) -> None:
            kernels.em_panel(
                array[chunk],
                mask[chunk],
                fitted.means[chunk],
                fitted.variances[chunk],
                fitted.transmat[chunk],
                fitted.startprob[chunk],
                self.n_iter,
                self.tol,
                self.min_variance,
                loglik[chunk],
                iterations[chunk],
                converged[chunk],
            )

        _over_symbols(n_symbols, run)
        counts = mask.sum(axis=1)
        return [
            order_states(
                fitted.params(
                    n,
                    features,
                    loglik=float(loglik[n]),
                    n_obs=int(counts[n]),
                    extra={"n_iter": int(iterations[n]), "converged": bool(converged[n])},
                )
            )
            for n in range(n_symbols)
        ]

    def _posteriors(
        self,
        kernel: _PosteriorKernel,
        params_list: Sequence[RegimeParams],
        x: ArrayLike,
        valid: ArrayLike | None,
        *,
        single: bool,
    ) -> tuple[FloatArray, FloatArray]:
        """State probabilities (N, T, K) from `kernel` and each symbol's log-likelihood."""
        n_features = np.shape(params_list[0].means)[1] if params_list else None
        array, mask = _checked_panel(x, valid, single=single, n_features=n_features)
        if len(params_list) != array.shape[0]:
            raise ValueError(f"{len(params_list)} parameter sets for {array.shape[0]} symbols")
        stacked = _StackedParams.of(params_list, array.shape[2])
        n_states = stacked.transmat.shape[1]
        probs = np.empty((array.shape[0], array.shape[1], n_states))
        loglik = np.empty(array.shape[0])

        def run(chunk: slice) -> None:
            kernel(
                array[chunk],
                mask[chunk],
                stacked.means[chunk],
                stacked.variances[chunk],
                stacked.transmat[chunk],
                stacked.startprob[chunk],
                probs[chunk],
                loglik[chunk],
            )

        _over_symbols(array.shape[0], run)
        return probs, loglik

    def filter(self, params: RegimeParams, x: ArrayLike) -> FloatArray:
        """Causal regime probabilities (T, K): row t is P(state | bars up to t)."""
        probs, _ = self._posteriors(
            kernels.filter_panel, [params], np.asarray(x)[None], None, single=True
        )
        return probs.reshape(probs.shape[1:])

    def smooth(self, params: RegimeParams, x: ArrayLike) -> FloatArray:
        """Two-sided regime probabilities (T, K) for research: row t uses all bars."""
        probs, _ = self._posteriors(
            kernels.smooth_panel, [params], np.asarray(x)[None], None, single=True
        )
        return probs.reshape(probs.shape[1:])

    def score(self, params: RegimeParams, x: ArrayLike) -> float:
        """Log-likelihood of one symbol's features `x` (T, F) under `params`."""
        _, loglik = self._posteriors(
            kernels.filter_panel, [params], np.asarray(x)[None], None, single=True
        )
        return float(loglik[0])

    def filter_panel(
        self,
        params_list: Sequence[RegimeParams],
        x: ArrayLike,
        valid: ArrayLike | None = None,
    ) -> FloatArray:
        """Causal regime probabilities (N, T, K); NaN before a symbol's first valid bar."""
        probs, _ = self._posteriors(kernels.filter_panel, params_list, x, valid, single=False)
        return probs

    def smooth_panel(
        self,
        params_list: Sequence[RegimeParams],
        x: ArrayLike,
        valid: ArrayLike | None = None,
    ) -> FloatArray:
        """Two-sided regime probabilities (N, T, K) for research; NaN before the first bar."""
        probs, _ = self._posteriors(kernels.smooth_panel, params_list, x, valid, single=False)
        return probs
