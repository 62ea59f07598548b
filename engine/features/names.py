"""Names of the registered features: the one place their spellings live."""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["FEATURE_NAMES", "FeatureName"]

FeatureName = Literal[
    "log_return",
    "simple_return",
    "realized_vol_20d",
    "realized_vol_60d",
    "parkinson_vol_20d",
    "garman_klass_vol_20d",
    "sma_50d",
    "trend_slope_20d",
    "momentum_63d",
    "drawdown",
    "zscore_20d",
]
FEATURE_NAMES: Final[tuple[FeatureName, ...]] = get_args(FeatureName)
