"""Mean reversion: fade stretches of the close away from its rolling mean."""

from __future__ import annotations

import math
from typing import Literal

import polars as pl

from engine.features.risk import rolling_zscore
from engine.strategies.base import Bars, StrategyParams, require, strategy

__all__ = ["Band", "Params", "mean_reversion", "warmup"]

Band = Literal["zscore", "bollinger"]


class Params(StrategyParams, frozen=True, forbid_unknown_fields=True):
    """Parameters of `mean_reversion`."""

    window: int = 20
    """Bars of the rolling mean and standard deviation of the close."""
    entry_z: float = 2.0
    """Enter when the close is more than entry_z standard deviations from its mean."""
    exit_z: float = 0.0
    """Exit once the close is back within exit_z standard deviations (on its side)."""
    band: Band = "zscore"
    """zscore or bollinger: the same rule (Bollinger bands at mean +- entry_z * std)."""
    short: bool = True
    """Also short when the close is above the upper band (else long or flat)."""

    def __post_init__(self) -> None:
        require(self.window >= 2, f"window must be >= 2, got {self.window}")
        require(
            math.isfinite(self.entry_z) and self.entry_z > 0,
            f"entry_z must be a finite number > 0, got {self.entry_z}",
        )
        require(
            0 <= self.exit_z < self.entry_z,
            f"exit_z must be in [0, entry_z) = [0, {self.entry_z}), got {self.exit_z}",
        )


def warmup(p: Params) -> int:
    """The rolling window's warm-up: window - 1 bars."""
    return p.window - 1


def _held(entry: pl.Expr, exit_: pl.Expr, bars: Bars) -> pl.Expr:
    """1.0 from a bar where `entry` holds until (excluding) the next where `exit_` holds,
    else 0.0, per symbol: events forward-filled, reset at each symbol's first bar."""
    event = (
        pl.when(entry)
        .then(1.0)
        .when(exit_)
        .then(0.0)
        .when(bars.layout.row_in_symbol == 0)
        .then(0.0)
    )
    return event.forward_fill()


@strategy(
    "mean_reversion",
    Params,
    "Long below the lower band (z < -entry_z), short above the upper band (with short), "
    "held until the z-score is back within exit_z.",
    warmup=warmup,
)
def mean_reversion(p: Params, bars: Bars) -> pl.Expr:
    """Target 1.0 from a bar whose z-score z (close vs its rolling mean, in rolling sample
    standard deviations over `window` bars) is below -entry_z until z >= -exit_z; -1.0 (with
    `short`) from z > entry_z until z <= exit_z; else 0.0. Null for each symbol's first
    window-1 bars; a bar without a z-score (a flat window) keeps the position.

    Long and short are two independent hold-until-exit states: an entry on one side is
    an exit of the other (exit_z < entry_z), so at most one is held and the target is
    their difference; each is a forward-filled series of entry/exit events, no loop.
    """
    z = rolling_zscore(window=p.window, presorted=bars.layout)
    target = _held(z < -p.entry_z, z >= -p.exit_z, bars)
    if p.short:
        target = target - _held(z > p.entry_z, z <= p.exit_z, bars)
    return bars.layout.after_warmup(target, p.window - 1)
