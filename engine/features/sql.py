"""The registered features as DuckDB SQL window functions, equal to the Polars ones.

`features_query` turns a table of canonical bars into the same columns `with_features`
adds (to float rounding). It exists to cross-check the Polars pipeline and to run the
features where a SQL engine is the natural host; Polars stays the primary path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

import duckdb
import polars as pl

from engine.features.names import FeatureName
from engine.features.pipeline import feature_names
from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS

__all__ = [
    "EXPANDING",
    "feature_sql",
    "features_query",
    "number",
    "quote",
    "run_sql",
    "trailing",
    "with_features_sql",
]

_ANNUALIZE: Final = math.sqrt(252)
_PARKINSON_SCALE: Final = 1.0 / (4.0 * math.log(2.0))
_GARMAN_KLASS_BODY_WEIGHT: Final = 2.0 * math.log(2.0) - 1.0
# helper columns of the query: log price, log return, bar number within the symbol
LOG_PRICE: Final = "__log_price"
LOG_RETURN: Final = "__log_return"
BAR_NUMBER: Final = "__bar_number"

_ORDER: Final = f'PARTITION BY "{SYMBOL}" ORDER BY "{TS}"'
EXPANDING: Final = f"({_ORDER} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"


def number(value: float) -> str:
    """`value` as an exact DOUBLE literal (a bare 0.5 would be a DECIMAL in DuckDB)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def quote(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def trailing(window: int) -> str:
    """A window frame of the last `window` bars of the symbol, current bar included."""
    return f"({_ORDER} ROWS BETWEEN {window - 1} PRECEDING AND CURRENT ROW)"


def _full(window: int, value: str, aggregate: str, result: str = "{}") -> str:
    """`result` of `aggregate` over the last `window` bars, null unless `value` is
    non-null on all of them."""
    frame = trailing(window)
    computed = result.format(f"{aggregate} OVER {frame}")
    return f"CASE WHEN count({value}) OVER {frame} = {window} THEN {computed} END"


def _realized_vol(window: int) -> str:
    return f"{_full(window, LOG_RETURN, f'stddev_samp({LOG_RETURN})')} * {number(_ANNUALIZE)}"


def _mean_vol(per_bar: str, window: int) -> str:
    annualized = f"sqrt(greatest({{}}, 0.0)) * {number(_ANNUALIZE)}"
    return _full(window, per_bar, f"avg({per_bar})", annualized)


_RANGE_SQ: Final = f'pow(ln("{HIGH}" / "{LOW}"), 2)'
_BODY_SQ: Final = f'pow(ln("{CLOSE}" / "{OPEN}"), 2)'
_CLOSE: Final = quote(CLOSE)

_FEATURE_SQL: Final[dict[FeatureName, str]] = {
    "log_return": LOG_RETURN,
    "simple_return": f"{_CLOSE} / lag({_CLOSE}) OVER ({_ORDER}) - 1.0",
    "realized_vol_20d": _realized_vol(20),
    "realized_vol_60d": _realized_vol(60),
    "parkinson_vol_20d": _mean_vol(f"({_RANGE_SQ} * {number(_PARKINSON_SCALE)})", 20),
    "garman_klass_vol_20d": _mean_vol(
        f"(0.5 * {_RANGE_SQ} - {number(_GARMAN_KLASS_BODY_WEIGHT)} * {_BODY_SQ})", 20
    ),
    "sma_50d": _full(50, _CLOSE, f"avg({_CLOSE})"),
    "trend_slope_20d": _full(20, LOG_PRICE, f"regr_slope({LOG_PRICE}, {BAR_NUMBER})"),
    "momentum_63d": f"{LOG_PRICE} - lag({LOG_PRICE}, 63) OVER ({_ORDER})",
    "drawdown": f"{_CLOSE} / max({_CLOSE}) OVER {EXPANDING} - 1.0",
    "zscore_20d": (
        f"CASE WHEN count({_CLOSE}) OVER {trailing(20)} = 20 "
        f"AND stddev_samp({_CLOSE}) OVER {trailing(20)} > 0 "
        f"THEN ({_CLOSE} - avg({_CLOSE}) OVER {trailing(20)}) "
        f"/ stddev_samp({_CLOSE}) OVER {trailing(20)} END"
    ),
}


def feature_sql(name: FeatureName) -> str:
    """The SQL expression of feature `name` over `features_query`'s helper columns."""
    return _FEATURE_SQL[name]


def features_query(source: str, names: Iterable[str], *, columns: Sequence[str]) -> str:
    """A SELECT of `columns` of table `source` plus the named features, sorted by symbol,
    ts; ValueError for unknown feature names."""
    wanted = feature_names(names)
    kept = ", ".join(quote(c) for c in columns)
    computed = "".join(f", {feature_sql(n)} AS {quote(n)}" for n in wanted)
    return f"""
WITH __prices AS (
    SELECT *, ln({_CLOSE}) AS {LOG_PRICE},
        CAST(row_number() OVER ({_ORDER}) AS DOUBLE) AS {BAR_NUMBER}
    FROM {source}
), __returns AS (
    SELECT *, {LOG_PRICE} - lag({LOG_PRICE}) OVER ({_ORDER}) AS {LOG_RETURN} FROM __prices
)
SELECT {kept}{computed} FROM __returns ORDER BY "{SYMBOL}", "{TS}"
"""


class _ArrowStream:
    """Hands a Polars frame to DuckDB through the Arrow C stream interface (no pyarrow)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._frame.__arrow_c_stream__(requested_schema)


def run_sql(frame: pl.DataFrame, query: str, *, table: str = "bars") -> pl.DataFrame:
    """The result of DuckDB `query` over `frame` registered as `table`, as a Polars frame;
    the input's columns keep their dtypes (DuckDB hands time zones back as Etc/UTC)."""
    with duckdb.connect() as connection:
        connection.register(table, _ArrowStream(frame))
        result = pl.DataFrame(connection.sql(query))
    if TS in frame.columns and TS in result.columns:
        result = result.with_columns(pl.col(TS).dt.convert_time_zone("UTC"))
    return result.cast({c: t for c, t in frame.schema.items() if c in result.columns})


def with_features_sql(frame: pl.DataFrame, names: Iterable[str]) -> pl.DataFrame:
    """`frame` plus the named features computed by DuckDB, sorted by symbol, ts."""
    return run_sql(frame, features_query("bars", names, columns=frame.columns))
