"""Regime filter: trade another strategy only while the symbol is in chosen regimes."""

from __future__ import annotations

from typing import Any, ClassVar, Final

import msgspec
import polars as pl

from engine.strategies.base import (
    REGIME_COLUMNS,
    Bars,
    Strategy,
    StrategyParams,
    get_strategy,
    require,
    strategy,
)

__all__ = ["Params", "regime_filter", "warmup"]

REGIME, REGIME_PROB = REGIME_COLUMNS
_NOT_A_BASE: Final = frozenset({"regime_filter", "regime_allocation"})


class Params(StrategyParams, frozen=True, forbid_unknown_fields=True):
    """Parameters of `regime_filter`."""

    uses_regimes: ClassVar[bool] = True

    base: str = "buy_and_hold"
    """Name of the registered strategy traded inside the chosen regimes."""
    base_params: dict[str, Any] = msgspec.field(default_factory=dict)
    """Parameters of the base strategy (its defaults for those left out)."""
    regimes: tuple[int, ...] = (0,)
    """Regime numbers in which the base strategy trades."""
    min_prob: float = 0.0
    """Least filtered probability of the regime for the base strategy to trade."""

    def __post_init__(self) -> None:
        require(
            self.base not in _NOT_A_BASE,
            f"base must be a strategy without its own regime logic, not {self.base!r}",
        )
        self.base_strategy()  # unknown names and bad base_params fail here
        require(bool(self.regimes), "regimes must name at least one regime")
        require(
            all(regime >= 0 for regime in self.regimes),
            f"regimes must be >= 0, got {list(self.regimes)}",
        )
        require(0 <= self.min_prob < 1, f"min_prob must be in [0, 1), got {self.min_prob}")

    def base_strategy(self) -> tuple[Strategy, StrategyParams]:
        """The base strategy's registry entry and its validated parameters."""
        base = get_strategy(self.base)
        return base, base.make(self.base_params)


def warmup(p: Params) -> int:
    """The base strategy's warm-up."""
    base, base_params = p.base_strategy()
    return base.warmup(base_params) if base.warmup is not None else 0


@strategy(
    "regime_filter",
    Params,
    "Trade a base strategy only while the symbol's filtered regime is one of `regimes` "
    "(with probability >= min_prob); flat otherwise.",
    warmup=warmup,
)
def regime_filter(p: Params, bars: Bars) -> pl.Expr:
    """Target of the base strategy on bars whose causal regime is in `regimes` with
    regime_prob >= min_prob; 0.0 on other bars and where the regime is unknown (null)."""
    base, base_params = p.base_strategy()
    inside = pl.col(REGIME).is_in(p.regimes)
    if p.min_prob > 0:
        inside &= pl.col(REGIME_PROB) >= p.min_prob
    return pl.when(inside).then(base.targets(base_params, bars)).otherwise(0.0)
