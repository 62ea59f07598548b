"""Buy and hold: a constant target weight on every bar."""

from __future__ import annotations

import math

import polars as pl

from engine.strategies.base import Bars, StrategyParams, require, strategy

__all__ = ["Params", "buy_and_hold", "warmup"]


class Params(StrategyParams, frozen=True, forbid_unknown_fields=True):
    """Parameters of `buy_and_hold`."""

    weight: float = 1.0
    """Target weight of equity held on every bar (negative = short and hold)."""

    def __post_init__(self) -> None:
        require(
            math.isfinite(self.weight) and abs(self.weight) <= 10,
            f"weight must be a number in [-10, 10], got {self.weight}",
        )


def warmup(p: Params) -> int:
    """No warm-up: the first bar already has its target."""
    return 0


@strategy(
    "buy_and_hold",
    Params,
    "Hold a constant weight of equity from the first bar on.",
    warmup=warmup,
)
def buy_and_hold(p: Params, bars: Bars) -> pl.Expr:
    """Target `weight` on every bar, so the position opens at the second bar's close."""
    return pl.lit(p.weight, dtype=pl.Float64)
