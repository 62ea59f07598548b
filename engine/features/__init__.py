"""Vectorized features: Polars expressions over the canonical bar frame.

The public surface: `with_features` (named features onto a lazy bar frame),
`with_reference` (another series, e.g. the VIX, as of each bar), the registry `FEATURES`
and its names `FEATURE_NAMES` / `FeatureName`. The topic modules (`returns`, `volatility`,
`trend`, `risk`) hold the expressions themselves; `sql` the same features in DuckDB SQL.
"""

from __future__ import annotations

from engine.features.names import FEATURE_NAMES, FeatureName
from engine.features.pipeline import FEATURES, with_features, with_reference

__all__ = ["FEATURES", "FEATURE_NAMES", "FeatureName", "with_features", "with_reference"]
