"""Kernels of the diagonal Gaussian HMM: scaled forward-backward, Baum-Welch EM, start.

Panels are `x` (N, T, F) with a validity mask (N, T). The numba kernels loop over the
symbols of the (sub-)panel they are given, each symbol with its own EM loop (a converged
symbol stops while others continue); they release the GIL, so `hmm` runs sub-panels on
parallel threads. Within a symbol the chain starts at its first valid step (left padding
is skipped entirely); later invalid steps carry no observation (emission likelihood 1), so
the chain only moves through its transition matrix there.

Forward-backward uses per-step scaling (Rabiner) with emissions shifted by their per-step
maximum log density, so an outlier far in every state's tail never underflows to zero.
Results agree with hmmlearn's log-space recursions to rounding.
"""

# Kernels take their arrays positionally: numba compiles plain positional signatures best.
# ruff: noqa: PLR0917

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = [
    "em_panel",
    "filter_panel",
    "initial_params",
    "smooth_panel",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
_Function = TypeVar("_Function", bound=Callable[..., Any])

_LOG_2PI = math.log(2.0 * math.pi)
# Emission ratios below e^-700 (vs the best state at that step) are floored: it keeps every
# scale factor positive and changes no likelihood by a representable amount.
_MIN_LOG_RATIO = -700.0


def _kernel() -> Callable[[_Function], _Function]:
    """A decorator compiling a kernel with numba (on-disk cache, GIL released), typed."""
    return cast(Callable[[_Function], _Function], njit(cache=True, nogil=True))


@_kernel()
def _first_valid(valid: BoolArray) -> int:
    for t in range(valid.shape[0]):
        if valid[t]:
            return t
    return int(valid.shape[0])


@_kernel()
def _emissions(
    x: FloatArray,
    valid: BoolArray,
    means: FloatArray,
    variances: FloatArray,
    start: int,
    dens: FloatArray,
    shift: FloatArray,
) -> None:
    # dens[t, k] = b_k(x_t) / max_j b_j(x_t), shift[t] = max_j log b_j(x_t); invalid rows: 1, 0
    n_steps, n_features = x.shape
    n_states = means.shape[0]
    const = np.empty(n_states)
    inv_var = np.empty((n_states, n_features))
    for k in range(n_states):
        log_det = 0.0
        for f in range(n_features):
            log_det += math.log(variances[k, f])
            inv_var[k, f] = 1.0 / variances[k, f]
        const[k] = -0.5 * (n_features * _LOG_2PI + log_det)
    for t in range(start, n_steps):
        if not valid[t]:
            dens[t, :] = 1.0
            shift[t] = 0.0
            continue
        best = -np.inf
        for k in range(n_states):
            quad = 0.0
            for f in range(n_features):
                diff = x[t, f] - means[k, f]
                quad += diff * diff * inv_var[k, f]
            log_b = const[k] - 0.5 * quad
            dens[t, k] = log_b
            best = max(best, log_b)
        for k in range(n_states):
            ratio = dens[t, k] - best
            dens[t, k] = 1.0 if ratio == 0.0 else math.exp(max(ratio, _MIN_LOG_RATIO))
        shift[t] = best


@_kernel()
def _forward(
    dens: FloatArray,
    shift: FloatArray,
    start: int,
    startprob: FloatArray,
    transmat: FloatArray,
    alpha: FloatArray,
    scale: FloatArray,
) -> float:
    # alpha[t] = P(s_t | x_start..t); returns log P(x_start..T)
    n_steps, n_states = dens.shape
    loglik = 0.0
    for t in range(start, n_steps):
        total = 0.0
        for j in range(n_states):
            pred = startprob[j] if t == start else 0.0
            if t > start:
                for i in range(n_states):
                    pred += alpha[t - 1, i] * transmat[i, j]
            alpha[t, j] = pred * dens[t, j]
            total += alpha[t, j]
        inv_total = 1.0 / total
        for j in range(n_states):
            alpha[t, j] *= inv_total
        scale[t] = total
        loglik += math.log(total) + shift[t]
    return loglik


@_kernel()
def _backward(
    dens: FloatArray,
    scale: FloatArray,
    start: int,
    transmat: FloatArray,
    alpha: FloatArray,
    beta: FloatArray,
    trans_counts: FloatArray,
) -> None:
    # scaled beta, and the expected transition counts sum_t xi_t(i, j) as a by-product
    n_steps, n_states = dens.shape
    weight = np.empty(n_states)
    beta[n_steps - 1, :] = 1.0
    trans_counts[:, :] = 0.0
    for t in range(n_steps - 2, start - 1, -1):
        inv_scale = 1.0 / scale[t + 1]
        for j in range(n_states):
            weight[j] = dens[t + 1, j] * beta[t + 1, j] * inv_scale
        for i in range(n_states):
            acc = 0.0
            for j in range(n_states):
                term = transmat[i, j] * weight[j]
                acc += term
                trans_counts[i, j] += alpha[t, i] * term
            beta[t, i] = acc


@_kernel()
def _posteriors(start: int, alpha: FloatArray, beta: FloatArray) -> None:
    # gamma[t] = P(s_t | all x), written over alpha; renormalised against rounding
    n_steps, n_states = alpha.shape
    for t in range(start, n_steps):
        total = 0.0
        for k in range(n_states):
            alpha[t, k] *= beta[t, k]
            total += alpha[t, k]
        for k in range(n_states):
            alpha[t, k] /= total


@_kernel()
def _posterior_moments(
    x: FloatArray,
    valid: BoolArray,
    start: int,
    alpha: FloatArray,
    beta: FloatArray,
    centre: FloatArray,
    mass: FloatArray,
    first: FloatArray,
    second: FloatArray,
) -> None:
    # posteriors gamma (written over alpha) with, in the same pass, each state's posterior
    # mass and first/second moments of x - centre; centring on the previous means keeps the
    # one-pass variance free of cancellation
    n_steps, n_features = x.shape
    n_states = centre.shape[0]
    mass[:] = 0.0
    first[:, :] = 0.0
    second[:, :] = 0.0
    for t in range(start, n_steps):
        total = 0.0
        for k in range(n_states):
            alpha[t, k] *= beta[t, k]
            total += alpha[t, k]
        inv_total = 1.0 / total
        for k in range(n_states):
            weight = alpha[t, k] * inv_total
            alpha[t, k] = weight
            if valid[t]:
                mass[k] += weight
                for f in range(n_features):
                    diff = x[t, f] - centre[k, f]
                    first[k, f] += weight * diff
                    second[k, f] += weight * diff * diff


@_kernel()
def _update_emissions(
    mass: FloatArray,
    first: FloatArray,
    second: FloatArray,
    min_variance: float,
    means: FloatArray,
    variances: FloatArray,
) -> None:
    # M-step of means and variances (floored); a state with no posterior mass keeps its own
    n_states, n_features = means.shape
    for k in range(n_states):
        if mass[k] > 1e-300:
            for f in range(n_features):
                offset = first[k, f] / mass[k]
                means[k, f] += offset
                variances[k, f] = max(second[k, f] / mass[k] - offset * offset, min_variance)


@_kernel()
def _update_chain(
    start: int,
    gamma: FloatArray,
    trans_counts: FloatArray,
    transmat: FloatArray,
    startprob: FloatArray,
) -> None:
    # M-step of the Markov chain; a row never left keeps its probabilities
    n_states = transmat.shape[0]
    for i in range(n_states):
        row_total = trans_counts[i].sum()
        if row_total > 0.0:
            for j in range(n_states):
                transmat[i, j] = trans_counts[i, j] / row_total
        startprob[i] = gamma[start, i]


@_kernel()
def _em_symbol(
    x: FloatArray,
    valid: BoolArray,
    means: FloatArray,
    variances: FloatArray,
    transmat: FloatArray,
    startprob: FloatArray,
    n_iter: int,
    tol: float,
    min_variance: float,
) -> tuple[float, int, bool]:
    # Baum-Welch in place; returns (log-likelihood of the final parameters, iterations, converged)
    n_steps, n_features = x.shape
    n_states = means.shape[0]
    start = _first_valid(valid)
    dens = np.empty((n_steps, n_states))
    alpha = np.empty((n_steps, n_states))
    beta = np.empty((n_steps, n_states))
    shift = np.empty(n_steps)
    scale = np.empty(n_steps)
    trans_counts = np.empty((n_states, n_states))
    mass = np.empty(n_states)
    first = np.empty((n_states, n_features))
    second = np.empty((n_states, n_features))
    previous = -np.inf
    converged = False
    iterations = 0
    for iteration in range(n_iter):
        _emissions(x, valid, means, variances, start, dens, shift)
        loglik = _forward(dens, shift, start, startprob, transmat, alpha, scale)
        _backward(dens, scale, start, transmat, alpha, beta, trans_counts)
        _posterior_moments(x, valid, start, alpha, beta, means, mass, first, second)
        _update_emissions(mass, first, second, min_variance, means, variances)
        _update_chain(start, alpha, trans_counts, transmat, startprob)
        iterations = iteration + 1
        # hmmlearn's rule: stop after the M-step of the first iteration that gained < tol
        if iteration > 0 and loglik - previous < tol:
            converged = True
            break
        previous = loglik
    _emissions(x, valid, means, variances, start, dens, shift)
    final = _forward(dens, shift, start, startprob, transmat, alpha, scale)
    return final, iterations, converged


@_kernel()
def em_panel(
    x: FloatArray,
    valid: BoolArray,
    means: FloatArray,
    variances: FloatArray,
    transmat: FloatArray,
    startprob: FloatArray,
    n_iter: int,
    tol: float,
    min_variance: float,
    loglik: FloatArray,
    iterations: IntArray,
    converged: BoolArray,
) -> None:
    """Baum-Welch for every symbol of the (sub-)panel, parameters updated in place."""
    for n in range(x.shape[0]):
        result = _em_symbol(
            x[n],
            valid[n],
            means[n],
            variances[n],
            transmat[n],
            startprob[n],
            n_iter,
            tol,
            min_variance,
        )
        loglik[n] = result[0]
        iterations[n] = result[1]
        converged[n] = result[2]


@_kernel()
def filter_panel(
    x: FloatArray,
    valid: BoolArray,
    means: FloatArray,
    variances: FloatArray,
    transmat: FloatArray,
    startprob: FloatArray,
    probs: FloatArray,
    loglik: FloatArray,
) -> None:
    """Causal P(s_t | x_..t) into `probs` (NaN before a symbol's first valid step)."""
    n_steps = x.shape[1]
    n_states = means.shape[1]
    dens = np.empty((n_steps, n_states))
    shift = np.empty(n_steps)
    scale = np.empty(n_steps)
    for n in range(x.shape[0]):
        start = _first_valid(valid[n])
        probs[n, :start, :] = np.nan
        _emissions(x[n], valid[n], means[n], variances[n], start, dens, shift)
        loglik[n] = _forward(dens, shift, start, startprob[n], transmat[n], probs[n], scale)


@_kernel()
def smooth_panel(
    x: FloatArray,
    valid: BoolArray,
    means: FloatArray,
    variances: FloatArray,
    transmat: FloatArray,
    startprob: FloatArray,
    probs: FloatArray,
    loglik: FloatArray,
) -> None:
    """Two-sided P(s_t | all x) into `probs` (NaN before a symbol's first valid step)."""
    n_steps = x.shape[1]
    n_states = means.shape[1]
    dens = np.empty((n_steps, n_states))
    beta = np.empty((n_steps, n_states))
    shift = np.empty(n_steps)
    scale = np.empty(n_steps)
    trans_counts = np.empty((n_states, n_states))
    for n in range(x.shape[0]):
        start = _first_valid(valid[n])
        probs[n, :start, :] = np.nan
        _emissions(x[n], valid[n], means[n], variances[n], start, dens, shift)
        loglik[n] = _forward(dens, shift, start, startprob[n], transmat[n], probs[n], scale)
        _backward(dens, scale, start, transmat[n], probs[n], beta, trans_counts)
        _posteriors(start, probs[n], beta)


def initial_params(
    x: FloatArray, valid: BoolArray, n_states: int, window: int, min_variance: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """EM starting means, variances, transition matrices and start distributions (N, ...).

    Each symbol's valid steps (in time order) are binned into `n_states` equal-count
    quantile bins of a centred `window`-bar moving average of (feature 0 - its median)^2;
    ties break by time. Vectorized NumPy: it runs once per fit, so no kernel is needed.
    """
    n_symbols, n_steps, _ = x.shape
    counts = valid.sum(axis=1)
    steps = np.arange(n_steps)
    in_sample = steps[None, :] < counts[:, None]
    # valid rows first, in time order: row i < counts[n] is symbol n's i-th observation
    compact_rows = np.argsort(~valid, axis=1, kind="stable")
    compact = np.where(
        in_sample[:, :, None], np.take_along_axis(x, compact_rows[:, :, None], axis=1), 0.0
    )
    level = compact.sum(axis=1) / counts[:, None]  # (N, F)
    centred = np.where(in_sample[:, :, None], compact - level[:, None, :], 0.0)
    dispersion = _local_dispersion(centred[:, :, 0], in_sample, counts, window)
    by_dispersion = np.argsort(np.where(in_sample, dispersion, np.inf), axis=1, kind="stable")
    # bins are contiguous runs of the dispersion order: bin k holds ranks [edge_k, edge_k+1)
    edges = (np.arange(n_states + 1)[None, :] * counts[:, None] + n_states - 1) // n_states
    ordered = np.take_along_axis(centred, by_dispersion[:, :, None], axis=1)
    zeros = np.zeros((n_symbols, 1, x.shape[2]))
    sums = np.concatenate([zeros, np.cumsum(ordered, axis=1)], axis=1)
    squares = np.concatenate([zeros, np.cumsum(ordered**2, axis=1)], axis=1)
    size = np.diff(edges, axis=1)[:, :, None]
    bin_mean = np.diff(np.take_along_axis(sums, edges[:, :, None], axis=1), axis=1) / size
    bin_square = np.diff(np.take_along_axis(squares, edges[:, :, None], axis=1), axis=1) / size
    overall = squares[:, -1, :] / counts[:, None]
    # a bin of identical values (e.g. a run of zero returns) must not start degenerate
    floor = np.maximum(1e-3 * overall, min_variance)[:, None, :]
    variances = np.maximum(bin_square - bin_mean**2, floor)
    ranks = np.empty_like(by_dispersion)
    np.put_along_axis(ranks, by_dispersion, np.broadcast_to(steps, ranks.shape), axis=1)
    labels = np.where(in_sample, ranks * n_states // np.maximum(counts[:, None], 1), n_states)
    transmat = _label_transitions(labels, n_states) + 1.0  # one pseudo-count per move
    transmat /= transmat.sum(axis=2, keepdims=True)
    startprob = np.full((n_symbols, n_states), 1.0 / n_states)
    return bin_mean + level[:, None, :], variances, transmat, startprob


def _local_dispersion(
    centred: FloatArray, in_sample: BoolArray, counts: IntArray, window: int
) -> FloatArray:
    """Centred moving average of (x - median)^2 over `window` in-sample steps, per symbol."""
    n_symbols, n_steps = centred.shape
    ordered = np.sort(np.where(in_sample, centred, np.inf), axis=1)
    lower = np.take_along_axis(ordered, ((counts - 1) // 2)[:, None], axis=1)
    upper = np.take_along_axis(ordered, (counts // 2)[:, None], axis=1)
    squared = np.where(in_sample, (centred - 0.5 * (lower + upper)) ** 2, 0.0)
    cumulative = np.concatenate([np.zeros((n_symbols, 1)), np.cumsum(squared, axis=1)], axis=1)
    steps = np.arange(n_steps)[None, :]
    lo = np.broadcast_to(np.maximum(steps - window // 2, 0), (n_symbols, n_steps))
    hi = np.maximum(np.minimum(steps + window // 2 + 1, counts[:, None]), lo + 1)
    total = np.take_along_axis(cumulative, hi, axis=1) - np.take_along_axis(cumulative, lo, axis=1)
    return np.asarray(total / (hi - lo), dtype=np.float64)


def _label_transitions(labels: IntArray, n_states: int) -> FloatArray:
    """Counts (N, K, K) of moves from label i to label j; label K (out of sample) is dropped."""
    n_symbols = labels.shape[0]
    base = n_states + 1
    codes = labels[:, :-1] * base + labels[:, 1:] + (np.arange(n_symbols) * base * base)[:, None]
    counts = np.bincount(codes.ravel(), minlength=n_symbols * base * base)
    return counts.reshape(n_symbols, base, base)[:, :n_states, :n_states].astype(np.float64)
