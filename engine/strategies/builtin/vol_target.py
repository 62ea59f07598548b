"""Volatility-targeted buy and hold: long, scaled to a target annualized volatility."""

from __future__ import annotations

import math

import polars as pl

from engine.features.volatility import realized_vol
from engine.strategies.base import Bars, StrategyParams, require, strategy

__all__ = ["Params", "vol_target", "warmup"]


class Params(StrategyParams, frozen=True, forbid_unknown_fields=True):
    """Parameters of `vol_target`."""

    vol_target: float = 0.10
    """Annualized volatility aimed for (0.10 = 10 %)."""
    window: int = 21
    """Log returns in the realized volatility estimate."""
    max_leverage: float = 2.0
    """Cap on the target weight."""
    periods_per_year: float = 252.0
    """Bars per year, to annualize (252 for daily bars)."""

    def __post_init__(self) -> None:
        require(0 < self.vol_target <= 5, f"vol_target must be in (0, 5], got {self.vol_target}")
        require(self.window >= 2, f"window must be >= 2, got {self.window}")
        require(
            0 < self.max_leverage <= 10,
            f"max_leverage must be in (0, 10], got {self.max_leverage}",
        )
        require(
            math.isfinite(self.periods_per_year) and self.periods_per_year > 0,
            f"periods_per_year must be a finite number > 0, got {self.periods_per_year}",
        )


def warmup(p: Params) -> int:
    """Bars before the first full window of returns: `window`."""
    return p.window


@strategy(
    "vol_target",
    Params,
    "Long only, sized to a target volatility: vol_target / realized vol, capped at max_leverage.",
    warmup=warmup,
)
def vol_target(p: Params, bars: Bars) -> pl.Expr:
    """Target min(max_leverage, vol_target / sigma), sigma the annualized sample standard
    deviation of the last `window` log returns of the close (max_leverage when sigma is 0);
    null for each symbol's first `window` bars."""
    sigma = realized_vol(p.window, p.periods_per_year, presorted=bars.layout)
    return (p.vol_target / sigma).clip(upper_bound=p.max_leverage)
