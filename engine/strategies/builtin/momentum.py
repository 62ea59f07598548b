"""Time-series momentum: long while the trailing return beats a threshold."""

from __future__ import annotations

import math

import polars as pl

from engine.features import trend
from engine.strategies.base import Bars, StrategyParams, require, strategy

__all__ = ["Params", "time_series_momentum", "warmup"]


class Params(StrategyParams, frozen=True, forbid_unknown_fields=True):
    """Parameters of `momentum`."""

    lookback: int = 252
    """Bars back to the start of the measured return."""
    skip: int = 0
    """Most recent bars left out of the return (21 with lookback 252: 12-1 momentum)."""
    threshold: float = 0.0
    """Log return the trailing return must beat (in absolute value, for shorts)."""
    short: bool = False
    """False: long or flat; True: also short when the return is below -threshold."""

    def __post_init__(self) -> None:
        require(self.lookback >= 1, f"lookback must be >= 1, got {self.lookback}")
        require(
            0 <= self.skip < self.lookback,
            f"skip must be in [0, lookback) = [0, {self.lookback}), got {self.skip}",
        )
        require(
            math.isfinite(self.threshold) and self.threshold >= 0,
            f"threshold must be a finite number >= 0, got {self.threshold}",
        )


def warmup(p: Params) -> int:
    """Bars before the first return from t-lookback: `lookback`."""
    return p.lookback


def trailing_return(p: Params, bars: Bars) -> pl.Expr:
    """Log return of the close from bar t-lookback to bar t-skip, per symbol; null for each
    symbol's first `lookback` bars."""
    measured = trend.momentum(p.lookback - p.skip, presorted=bars.layout)
    if p.skip == 0:
        return measured
    # the flat shift pulls the previous symbol's last bars in: null them again
    return bars.layout.after_warmup(measured.shift(p.skip), p.lookback)


@strategy(
    "momentum",
    Params,
    "Time-series momentum: long while the log return from t-lookback to t-skip is above "
    "threshold; short below -threshold (with short), else flat.",
    warmup=warmup,
)
def time_series_momentum(p: Params, bars: Bars) -> pl.Expr:
    """Target 1.0 when ln(p[t-skip] / p[t-lookback]) > threshold, -1.0 when it is below
    -threshold and `short` is set, else 0.0; null for each symbol's first lookback bars."""
    measured = trailing_return(p, bars)
    below = -1.0 if p.short else 0.0
    return (
        pl.when(measured > p.threshold)
        .then(1.0)
        .when(measured < -p.threshold)
        .then(below)
        .when(measured.is_not_null())
        .then(0.0)
    )
