"""Volatility per symbol: realized (close-to-close), Parkinson and Garman-Klass (OHLC).

All three are annualized standard deviations of log returns over a trailing window of
bars, so they are comparable: the per-bar figure times sqrt(`annualization`) (252
trading days for daily bars).
"""

from __future__ import annotations

import math

import polars as pl

from engine.features.per_symbol import Presorted, as_expr, check_window, layout
from engine.features.returns import flat_log_return, log_price
from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL

__all__ = ["garman_klass_vol", "parkinson_vol", "range_variance", "realized_vol"]

_PARKINSON_SCALE = 1.0 / (4.0 * math.log(2.0))
_GARMAN_KLASS_BODY_WEIGHT = 2.0 * math.log(2.0) - 1.0


def realized_vol(
    window: int = 20,
    annualization: float = 252,
    *,
    price: str | pl.Expr = CLOSE,
    presorted: bool | Presorted = False,
) -> pl.Expr:
    """Annualized realized volatility per symbol: the sample standard deviation (ddof 1) of
    the last `window` log returns; null until a symbol has `window` returns."""
    check_window(window)
    scale = math.sqrt(annualization)
    fast = layout(presorted)
    if fast:
        returns = fast.reuse(flat_log_return(price))
        return fast.after_warmup(returns.rolling_std(window) * scale, window)
    return (log_price(price).diff().rolling_std(window) * scale).over(SYMBOL)


def range_variance(high: str | pl.Expr = HIGH, low: str | pl.Expr = LOW) -> pl.Expr:
    """Squared log range ln(H/L)^2 of each bar (Parkinson and Garman-Klass both use it)."""
    return (as_expr(high) / as_expr(low)).log().pow(2)


def _ohlc_vol(
    per_bar_variance: pl.Expr, window: int, annualization: float, fast: Presorted | None
) -> pl.Expr:
    if fast:
        # A sliding sum keeps a rounding residue of the previous symbol's variances, which
        # the square root turns into a visible vol (1e-9) on flat series; a weighted sum is
        # computed afresh per window, so no symbol leaks into the next.
        mean_variance = per_bar_variance.rolling_sum(window, weights=[1.0 / window] * window)
    else:
        mean_variance = per_bar_variance.rolling_mean(window)
    vol = mean_variance.clip(lower_bound=0.0).sqrt() * math.sqrt(annualization)
    return fast.after_warmup(vol, window - 1) if fast else vol.over(SYMBOL)


def parkinson_vol(
    window: int = 20,
    annualization: float = 252,
    *,
    high: str | pl.Expr = HIGH,
    low: str | pl.Expr = LOW,
    presorted: bool | Presorted = False,
) -> pl.Expr:
    """Annualized Parkinson volatility per symbol from the high-low range of the last
    `window` bars, sqrt(mean(ln(H/L)^2) / (4 ln 2)); null for a symbol's first window-1 bars."""
    check_window(window, minimum=1)
    fast = layout(presorted)
    range_sq = fast.reuse(range_variance(high, low)) if fast else range_variance(high, low)
    return _ohlc_vol(range_sq * _PARKINSON_SCALE, window, annualization, fast)


def garman_klass_vol(
    window: int = 20,
    annualization: float = 252,
    *,
    open_: str | pl.Expr = OPEN,
    high: str | pl.Expr = HIGH,
    low: str | pl.Expr = LOW,
    close: str | pl.Expr = CLOSE,
    presorted: bool | Presorted = False,
) -> pl.Expr:
    """Annualized Garman-Klass volatility per symbol over the last `window` bars,
    sqrt(mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2)); null for a symbol's first
    window-1 bars. The mean is floored at 0 (it can dip below it on near-flat windows)."""
    body_variance = (as_expr(close) / as_expr(open_)).log().pow(2)
    check_window(window, minimum=1)
    fast = layout(presorted)
    range_sq = fast.reuse(range_variance(high, low)) if fast else range_variance(high, low)
    per_bar = 0.5 * range_sq - _GARMAN_KLASS_BODY_WEIGHT * body_variance
    return _ohlc_vol(per_bar, window, annualization, fast)
