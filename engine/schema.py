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

BAR_SCHEMA: Final = pl.Schema(
    {  # type: ignore[arg-type]  # polars' stubs reject a dict of dtype instances
        SYMBOL: pl.String,
        TS: pl.Datetime("us", "UTC"),
        OPEN: pl.Float64,
        HIGH: pl.Float64,
        LOW: pl.Float64,
        CLOSE: pl.Float64,
        VOLUME: pl.Float64,
    }
)


def validate_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` in canonical form (columns, dtypes, order); ValueError naming what is wrong."""
    missing = [name for name in BAR_SCHEMA if name not in frame.columns]
    if missing:
        raise ValueError(f"bar frame lacks column(s): {', '.join(missing)}")
    columns = [*BAR_SCHEMA, *([ADJ_CLOSE] if ADJ_CLOSE in frame.columns else [])]
    try:
        out = frame.select(
            *(pl.col(name).cast(dtype, strict=True) for name, dtype in BAR_SCHEMA.items()),
            *([pl.col(ADJ_CLOSE).cast(pl.Float64, strict=True)] if ADJ_CLOSE in columns else []),
        )
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"bar frame has a column of the wrong type: {exc}") from None
    return out.sort(SYMBOL, TS)
