"""Regime allocation: portfolio weights per regime of a reference symbol."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar, Final

import msgspec
import polars as pl

from engine.schema import SYMBOL
from engine.strategies.base import Bars, SpecError, StrategyParams, require, strategy

__all__ = ["REF_REGIME", "Params", "regime_allocation", "warmup"]

REF_REGIME: Final = "ref_regime"
"""Causal regime of the spec's reference symbol at the bar's timestamp."""
_MAX_GROSS: Final = 10.0


class Params(StrategyParams, frozen=True, forbid_unknown_fields=True):
    """Parameters of `regime_allocation`."""

    uses_regimes: ClassVar[bool] = True

    weights: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    """Regime number (as a string, e.g. "0") -> {symbol: weight}; unlisted symbols get 0."""
    default: dict[str, float] = msgspec.field(default_factory=dict)
    """{symbol: weight} while the reference regime is unknown or not in `weights`."""

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for key, allocation in self.weights.items():
            regime = _regime_number(key)
            require(
                regime not in seen,
                f"regime keys {seen.get(regime)!r} and {key!r} name the same regime",
            )
            seen[regime] = key
            _check_allocation(allocation, f"weights[{key!r}]")
        _check_allocation(self.default, "default")

    def by_regime(self) -> dict[int, dict[str, float]]:
        """`weights` keyed by regime number."""
        return {int(key): allocation for key, allocation in self.weights.items()}


def _regime_number(key: str) -> int:
    try:
        regime = int(key)
    except ValueError:
        raise SpecError(
            f"regime key {key!r} is not an integer (weights maps regime numbers)"
        ) from None
    require(regime >= 0, f"regime key {key!r} must be >= 0")
    return regime


def _check_allocation(allocation: Mapping[str, float], where: str) -> None:
    for symbol, weight in allocation.items():
        require(math.isfinite(weight), f"{where}[{symbol!r}] must be finite, got {weight}")
    gross = sum(abs(weight) for weight in allocation.values())
    require(
        gross <= _MAX_GROSS, f"{where}: sum of |weight| is {gross:g}, must be <= {_MAX_GROSS:g}"
    )


def warmup(p: Params) -> int:
    """No warm-up: weights follow the reference regime from the first bar."""
    return 0


def _weight_of_symbol(allocation: Mapping[str, float]) -> pl.Expr:
    if not allocation:
        return pl.lit(0.0, dtype=pl.Float64)
    return pl.col(SYMBOL).replace_strict(dict(allocation), default=0.0, return_dtype=pl.Float64)


@strategy(
    "regime_allocation",
    Params,
    "Weights per regime of the reference symbol across assets (for a shared-cash "
    "portfolio); `default` weights while the regime is unknown or unlisted.",
    warmup=warmup,
)
def regime_allocation(p: Params, bars: Bars) -> pl.Expr:
    """Target of (symbol s, bar t) = weights[ref_regime_t][s] (0.0 for unlisted symbols);
    `default`[s] (0.0 if unlisted) where ref_regime_t is null or not a key of `weights`."""
    target = _weight_of_symbol(p.default)
    for regime, allocation in p.by_regime().items():
        is_regime = pl.col(REF_REGIME) == regime
        target = pl.when(is_regime).then(_weight_of_symbol(allocation)).otherwise(target)
    return target
