"""Named features and the pipeline steps that add them to a lazy bar frame.

`FEATURES` maps each name of `FeatureName` to its spec; `FEATURES[name]()` is the simple
`.over` expression, `FEATURES[name](presorted=True)` the fast one for sorted frames.
`with_features` adds features by name (fast form by default: canonical frames are sorted
by symbol, ts); `with_reference` adds another series, such as the VIX, as of each bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, cast

import polars as pl

from engine.features.names import FEATURE_NAMES, FeatureName
from engine.features.per_symbol import Presorted, guard, row_in_symbol, symbol_run
from engine.features.returns import flat_log_return, log_price, log_return, simple_return
from engine.features.risk import drawdown, rolling_zscore
from engine.features.trend import momentum, sma, trend_slope
from engine.features.volatility import (
    garman_klass_vol,
    parkinson_vol,
    range_variance,
    realized_vol,
)
from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS

__all__ = [
    "FEATURES",
    "FeatureSpec",
    "Staged",
    "feature_names",
    "stage",
    "with_features",
    "with_reference",
]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """A named feature: how to build it, which bar columns it reads, how many leading
    bars of each symbol it leaves null, and which subexpressions it shares with others."""

    name: FeatureName
    build: Callable[[bool | Presorted], pl.Expr]
    inputs: tuple[str, ...]
    warmup: int
    shared: tuple[pl.Expr, ...] = ()

    def __call__(self, *, presorted: bool | Presorted = False) -> pl.Expr:
        """The feature as an expression named after it (`.over` form unless presorted)."""
        return self.build(presorted).alias(self.name)


_OHLC: Final = (OPEN, HIGH, LOW, CLOSE)
_RETURNS: Final = (flat_log_return(CLOSE),)
_RANGE: Final = (range_variance(HIGH, LOW),)

FEATURES: Final[Mapping[FeatureName, FeatureSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            FeatureSpec("log_return", lambda p: log_return(presorted=p), (CLOSE,), 1, _RETURNS),
            FeatureSpec("simple_return", lambda p: simple_return(presorted=p), (CLOSE,), 1),
            FeatureSpec(
                "realized_vol_20d", lambda p: realized_vol(20, presorted=p), (CLOSE,), 20, _RETURNS
            ),
            FeatureSpec(
                "realized_vol_60d", lambda p: realized_vol(60, presorted=p), (CLOSE,), 60, _RETURNS
            ),
            FeatureSpec(
                "parkinson_vol_20d",
                lambda p: parkinson_vol(20, presorted=p),
                (HIGH, LOW),
                19,
                _RANGE,
            ),
            FeatureSpec(
                "garman_klass_vol_20d",
                lambda p: garman_klass_vol(20, presorted=p),
                _OHLC,
                19,
                _RANGE,
            ),
            FeatureSpec("sma_50d", lambda p: sma(50, presorted=p), (CLOSE,), 49),
            FeatureSpec(
                "trend_slope_20d", lambda p: trend_slope(20, presorted=p), (CLOSE,), 19, _RETURNS
            ),
            FeatureSpec(
                "momentum_63d",
                lambda p: momentum(63, presorted=p),
                (CLOSE,),
                63,
                (log_price(CLOSE),),
            ),
            FeatureSpec("drawdown", lambda p: drawdown(presorted=p), (CLOSE,), 0),
            FeatureSpec(
                "zscore_20d", lambda p: rolling_zscore(CLOSE, 20, presorted=p), (CLOSE,), 19
            ),
        )
    }
)
assert tuple(FEATURES) == FEATURE_NAMES, "every FeatureName needs exactly one spec"

_ROW_IN_SYMBOL: Final = "__row_in_symbol"
_SYMBOL_RUN: Final = "__symbol_run"


def feature_names(names: str | Iterable[str]) -> tuple[FeatureName, ...]:
    """`names` checked against the registry, duplicates dropped; ValueError naming the
    known features if one is unknown."""
    wanted = [names] if isinstance(names, str) else list(names)
    unknown = [name for name in wanted if name not in FEATURES]
    if unknown:
        raise ValueError(
            f"unknown feature(s) {', '.join(map(repr, unknown))}; "
            f"known features: {', '.join(FEATURE_NAMES)}"
        )
    return tuple(dict.fromkeys(cast(FeatureName, name) for name in wanted))


def _specs(lf: pl.LazyFrame, names: str | Iterable[str]) -> tuple[list[FeatureSpec], list[str]]:
    """The specs of `names` and the bar columns they read; ValueError if one is missing."""
    specs = [FEATURES[name] for name in feature_names(names)]
    columns = lf.collect_schema().names()
    inputs = list(dict.fromkeys(c for spec in specs for c in spec.inputs))
    missing = [c for c in (SYMBOL, TS, *inputs) if c not in columns]
    if missing:
        raise ValueError(f"features {[s.name for s in specs]} need column(s): {missing}")
    return specs, inputs


@dataclass(frozen=True, slots=True)
class Staged:
    """A sorted frame ready for the fast form: `frame` holds helper columns (`helpers`)
    that `layout` reads; drop them when done."""

    frame: pl.LazyFrame
    layout: Presorted
    helpers: tuple[str, ...]


def stage(lf: pl.LazyFrame, names: str | Iterable[str] = ()) -> Staged:
    """`lf` with symbol boundaries and the shared subexpressions of features `names`
    computed once as columns, guarded (order, null-free inputs), plus the layout that
    reads them. `with_features` and `rules_labels` build on it."""
    specs, inputs = _specs(lf, names)
    shared: list[pl.Expr] = []
    for expr in (e for spec in specs for e in spec.shared):
        if not any(expr.meta.eq(seen) for seen in shared):
            shared.append(expr)
    shared_columns = [f"__shared_{i}" for i in range(len(shared))]
    run = pl.col(_SYMBOL_RUN).set_sorted()
    layout = Presorted(pl.col(_ROW_IN_SYMBOL), run, tuple(zip(shared, shared_columns, strict=True)))
    frame = lf.with_columns(symbol_run().alias(_SYMBOL_RUN)).with_columns(
        row_in_symbol((run != run.shift(1)).fill_null(value=True)).alias(_ROW_IN_SYMBOL)
    )
    frame = guard(frame, presorted=layout, null_free=inputs)
    if shared:
        frame = frame.with_columns(e.alias(c) for e, c in zip(shared, shared_columns, strict=True))
    helpers = (_ROW_IN_SYMBOL, _SYMBOL_RUN, *shared_columns)
    return Staged(frame, layout, helpers)


def with_features(
    lf: pl.LazyFrame, names: str | Iterable[str], *, presorted: bool = True
) -> pl.LazyFrame:
    """`lf` plus one column per named feature, computed per symbol.

    `presorted=True` (default) uses the fast form, which needs each symbol's bars together
    and in time order (the canonical sort by symbol, ts) and non-null input prices;
    collecting raises ValueError if the frame breaks either. `presorted=False` uses
    `.over(SYMBOL)`: symbols in any order or interleaved, each symbol's bars in time order.
    Raises ValueError at once for unknown names or missing input columns.
    """
    specs, _ = _specs(lf, names)
    if not presorted:
        return lf.with_columns(spec() for spec in specs)
    staged = stage(lf, names)
    features = staged.frame.with_columns(spec(presorted=staged.layout) for spec in specs)
    return features.drop(staged.helpers)


def with_reference(
    lf: pl.LazyFrame,
    reference: pl.LazyFrame,
    symbol: str = "VIX",
    column: str = CLOSE,
    alias: str = "vix",
) -> pl.LazyFrame:
    """`lf` plus `alias`: the latest `column` of `symbol` in `reference` at or before each
    bar's ts (an as-of backward join, so causal); null before the reference starts.

    The row order of `lf` is kept. The as-of join runs on the distinct timestamps of `lf`
    (a calendar, small), then an equi-join carries the value to every bar.
    """
    series = (
        reference.filter(pl.col(SYMBOL) == symbol)
        .select(pl.col(TS), pl.col(column).alias(alias))
        .drop_nulls(alias)
        .sort(TS)
    )
    calendar = lf.select(pl.col(TS).unique().sort())
    as_of = calendar.join_asof(series, on=TS, strategy="backward")
    return lf.join(as_of, on=TS, how="left", maintain_order="left")
