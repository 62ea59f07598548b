"""Bar-to-bar returns per symbol: log and simple."""

from __future__ import annotations

import polars as pl

from engine.features.per_symbol import Presorted, as_expr, layout
from engine.schema import CLOSE, SYMBOL

__all__ = ["flat_log_return", "log_price", "log_return", "simple_return"]


def log_price(price: str | pl.Expr = CLOSE) -> pl.Expr:
    """Natural log of the price (elementwise, so the same in both forms)."""
    return as_expr(price).log()


def flat_log_return(price: str | pl.Expr = CLOSE) -> pl.Expr:
    """Log returns over the whole sorted column, 0 on the frame's first row; the first bar
    of every other symbol holds a meaningless cross-symbol value, for callers to mask.

    Null-free on null-free prices, which keeps Polars' rolling kernels on their fast
    path (and weighted rolling sums possible at all). Every fast-form feature of `price`
    builds on this one expression, so Polars computes the log once per query.
    """
    return log_price(price).diff().fill_null(0.0)


def log_return(price: str | pl.Expr = CLOSE, *, presorted: bool | Presorted = False) -> pl.Expr:
    """Bar-to-bar log return per symbol, ln(p_t / p_{t-1}); null on a symbol's first bar.

    `presorted` selects the fast form for frames sorted by (symbol, ts) (or any order
    keeping each symbol's bars together, in time order) with no null prices; see
    `engine.features.per_symbol`. The values are the same.
    """
    fast = layout(presorted)
    if fast:
        return fast.after_warmup(fast.reuse(flat_log_return(price)), 1)
    return log_price(price).diff().over(SYMBOL)


def simple_return(price: str | pl.Expr = CLOSE, *, presorted: bool | Presorted = False) -> pl.Expr:
    """Bar-to-bar simple return per symbol, p_t / p_{t-1} - 1; null on a symbol's first bar."""
    fast = layout(presorted)
    if fast:
        return fast.after_warmup(as_expr(price).pct_change(), 1)
    return as_expr(price).pct_change().over(SYMBOL)
