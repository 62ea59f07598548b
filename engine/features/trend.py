"""Trend per symbol: moving averages, the OLS slope of log price, and momentum."""

from __future__ import annotations

import polars as pl

from engine.features.per_symbol import Presorted, as_expr, check_window, layout
from engine.features.returns import flat_log_return, log_price
from engine.schema import CLOSE, SYMBOL

__all__ = ["ema", "momentum", "sma", "trend_slope"]


def sma(
    window: int = 50, expr: str | pl.Expr = CLOSE, *, presorted: bool | Presorted = False
) -> pl.Expr:
    """Simple moving average of `expr` over the last `window` bars per symbol; null for a
    symbol's first window-1 bars. `expr` must be elementwise (a column, or arithmetic on
    columns of the same bar)."""
    check_window(window, minimum=1)
    mean = as_expr(expr).rolling_mean(window)
    fast = layout(presorted)
    return fast.after_warmup(mean, window - 1) if fast else mean.over(SYMBOL)


def ema(
    span: float = 20, expr: str | pl.Expr = CLOSE, *, presorted: bool | Presorted = False
) -> pl.Expr:
    """Exponential moving average of `expr` per symbol, alpha = 2 / (span + 1), recursive
    (adjust=False) from the symbol's first bar, so defined from that bar on."""
    if span < 1:
        raise ValueError(f"span must be >= 1, got {span!r}")
    average = as_expr(expr).ewm_mean(span=span, adjust=False)
    fast = layout(presorted)
    # a recursion has no fixed window: the fast form only swaps the string key for an int
    return fast.over(average) if fast else average.over(SYMBOL)


def trend_slope(
    window: int = 20, price: str | pl.Expr = CLOSE, *, presorted: bool | Presorted = False
) -> pl.Expr:
    """Per-bar OLS slope of log price on time over the last `window` bars per symbol
    (0.001 = +0.1 % per bar); null for a symbol's first window-1 bars.

    The simple form is cov(t, ln p) / var(t) over the window. The fast form writes the
    same slope on the window's w-1 log returns, sum_m m (w - m) r_m * 6 / (w (w^2 - 1)):
    one exact weighted rolling sum, with no sliding-sum rounding drift.
    """
    check_window(window)
    fast = layout(presorted)
    if fast:
        denominator = window * (window * window - 1) / 6.0
        weights = [m * (window - m) / denominator for m in range(1, window)]
        slope = fast.reuse(flat_log_return(price)).rolling_sum(window - 1, weights=weights)
        return fast.after_warmup(slope, window - 1)
    bar_number = pl.int_range(pl.len()).cast(pl.Float64)
    covariance = pl.rolling_cov(bar_number, log_price(price), window_size=window)
    time_variance = window * (window + 1) / 12.0  # var(0..w-1) with ddof 1
    return (covariance / time_variance).over(SYMBOL)


def momentum(
    window: int = 63, price: str | pl.Expr = CLOSE, *, presorted: bool | Presorted = False
) -> pl.Expr:
    """Log return over the last `window` bars per symbol, ln(p_t / p_{t-window}); null for
    a symbol's first `window` bars."""
    check_window(window, minimum=1)
    fast = layout(presorted)
    if fast:
        return fast.after_warmup(fast.reuse(log_price(price)).diff(window), window)
    return log_price(price).diff(window).over(SYMBOL)
