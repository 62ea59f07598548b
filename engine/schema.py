"""The canonical bar frame: column names, dtypes and the check every boundary applies."""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = [
    "ADJ_CLOSE",
    "BAR_SCHEMA",
    "CLOSE",
    "HIGH",
    "LOW",
    "OPEN",
    "REGIME",
    "SYMBOL",
    "TS",
    "VOLUME",
    "validate_bars",
]

SYMBOL: Final = "symbol"
TS: Final = "ts"
OPEN: Final = "open"
HIGH: Final = "high"
LOW: Final = "low"
CLOSE: Final = "close"
VOLUME: Final = "volume"
ADJ_CLOSE: Final = "adj_close"
REGIME: Final = "regime"

_BAR_DTYPES: Final[dict[str, pl.DataType]] = {
    SYMBOL: pl.String(),
    TS: pl.Datetime("us", "UTC"),
    OPEN: pl.Float64(),
    HIGH: pl.Float64(),
    LOW: pl.Float64(),
    CLOSE: pl.Float64(),
    VOLUME: pl.Float64(),
}
BAR_SCHEMA: Final = pl.Schema(_BAR_DTYPES)


def validate_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with canonical columns and dtypes (row order kept); ValueError if it can't be.

    Extra columns are dropped except `adj_close` and an int `regime` (true regimes of
    simulated data). Row order is left as the source gave it, so the quality step can
    report out-of-order rows before it sorts.
    """
    missing = [name for name in BAR_SCHEMA if name not in frame.columns]
    if missing:
        raise ValueError(f"bar frame lacks column(s): {', '.join(missing)}")
    optional = {ADJ_CLOSE: pl.Float64, REGIME: pl.Int32}
    try:
        return frame.select(
            *(pl.col(name).cast(dtype, strict=True) for name, dtype in BAR_SCHEMA.items()),
            *(pl.col(n).cast(t, strict=True) for n, t in optional.items() if n in frame.columns),
        )
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"bar frame has a column of the wrong type: {first}") from None
