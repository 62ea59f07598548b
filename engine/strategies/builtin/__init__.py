"""The built-in strategies: importing this package registers each of them."""

from __future__ import annotations

from engine.strategies.builtin import (
    buy_and_hold,
    mean_reversion,
    momentum,
    regime_allocation,
    regime_filter,
    sma_crossover,
    vol_target,
)

__all__ = [
    "buy_and_hold",
    "mean_reversion",
    "momentum",
    "regime_allocation",
    "regime_filter",
    "sma_crossover",
    "vol_target",
]
