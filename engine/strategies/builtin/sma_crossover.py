"""Moving-average crossover: long while the fast average is above the slow one."""

from __future__ import annotations

from typing import Literal

import polars as pl

from engine.features.trend import ema, sma
from engine.strategies.base import Bars, StrategyParams, require, strategy

__all__ = ["AverageKind", "Params", "moving_average", "sma_crossover", "warmup"]

AverageKind = Literal["sma", "ema"]


class Params(StrategyParams, frozen=True, forbid_unknown_fields=True):
    """Parameters of `sma_crossover`."""

    fast: int = 50
    """Bars of the fast moving average (the span, for an EMA)."""
    slow: int = 200
    """Bars of the slow moving average (the span, for an EMA)."""
    kind: AverageKind = "sma"
    """sma: simple moving averages; ema: exponential ones (alpha = 2 / (span + 1))."""
    short: bool = False
    """False: long or flat; True: long or short (-1 while fast <= slow)."""

    def __post_init__(self) -> None:
        require(self.fast >= 1, f"fast must be >= 1, got {self.fast}")
        require(
            self.slow > self.fast,
            f"slow ({self.slow}) must be greater than fast ({self.fast})",
        )


def warmup(p: Params) -> int:
    """The slow average's warm-up: slow - 1 bars."""
    return p.slow - 1


def moving_average(kind: AverageKind, window: int, bars: Bars) -> pl.Expr:
    """The `kind` moving average of the close over `window` bars per symbol, null for each
    symbol's first window-1 bars (the column holding it, if the engine computed it in
    advance as one of `bars.layout.shared`)."""
    layout = bars.layout
    if kind == "sma":
        return layout.reuse(sma(window, presorted=layout))
    # an EMA is defined from the first bar; wait as long as the SMA would to trust it
    return layout.reuse(layout.after_warmup(ema(window, presorted=layout), window - 1))


@strategy(
    "sma_crossover",
    Params,
    "Long while the fast moving average of the close is above the slow one; flat "
    "(or short) otherwise.",
    warmup=warmup,
)
def sma_crossover(p: Params, bars: Bars) -> pl.Expr:
    """Target 1.0 while the fast MA of the close is above the slow MA, else 0.0 (-1.0 with
    `short`); null for each symbol's first slow-1 bars.

    Hot path of grid sweeps, so kept to two flat windows and one comparison. Polars (2.1)
    does not merge equal rolling windows across expressions (its common-subexpression pass
    skips them), so a sweep that wants each distinct average computed once passes them as
    `bars.layout.shared` columns, which `moving_average` then reads.
    """
    fast_ma = moving_average(p.kind, p.fast, bars)
    above = (fast_ma > moving_average(p.kind, p.slow, bars)).cast(pl.Float64)
    return above * 2.0 - 1.0 if p.short else above
