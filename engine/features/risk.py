"""Risk per symbol: drawdown from the running peak and rolling z-scores."""

from __future__ import annotations

import polars as pl

from engine.features.per_symbol import Presorted, as_expr, check_window, layout
from engine.schema import CLOSE, SYMBOL

__all__ = ["drawdown", "rolling_zscore"]


def drawdown(expr: str | pl.Expr = CLOSE, *, presorted: bool | Presorted = False) -> pl.Expr:
    """Drawdown per symbol from its running peak so far, p_t / max(p_0..p_t) - 1 (<= 0;
    -0.2 = 20 % below the peak). Causal: the peak is over past and current bars only."""
    value = as_expr(expr)
    below_peak = value / value.cum_max() - 1.0
    fast = layout(presorted)
    # a running peak has no fixed window: the fast form only swaps the string key for an int
    return fast.over(below_peak) if fast else below_peak.over(SYMBOL)


def rolling_zscore(
    expr: str | pl.Expr = CLOSE, window: int = 20, *, presorted: bool | Presorted = False
) -> pl.Expr:
    """How many rolling standard deviations `expr` sits above its rolling mean, over the
    last `window` bars per symbol (sample std, ddof 1).

    Null for a symbol's first window-1 bars, and where the window has no spread (a
    z-score is undefined there). `expr` must be elementwise, or an already computed column.
    """
    check_window(window)
    value = as_expr(expr)
    spread = value.rolling_std(window).replace(0.0, None)
    zscore = (value - value.rolling_mean(window)) / spread
    fast = layout(presorted)
    return fast.after_warmup(zscore, window - 1) if fast else zscore.over(SYMBOL)
