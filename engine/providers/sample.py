"""`sample` provider: real daily series shipped inside the `arch` package (no network).

S&P 500 (SPX) and NASDAQ Composite (IXIC) OHLCV 1999-2018; VIX (2014-2018) and WTI crude
(1986-2018) as close-only series (open = high = low = close, volume 0).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

import polars as pl

from engine.schema import ADJ_CLOSE, CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME, validate_bars

__all__ = ["SAMPLE_SYMBOLS", "extract", "fetch_bars", "transform"]

# symbol -> (file under arch/data, name)
SAMPLE_SYMBOLS: Final = {
    "SPX": ("sp500/sp500.csv.gz", "S&P 500 Index"),
    "IXIC": ("nasdaq/nasdaq.csv.gz", "NASDAQ Composite Index"),
    "VIX": ("vix/vix.csv.gz", "CBOE Volatility Index"),
    "WTI": ("wti/wti.csv.gz", "WTI Crude Oil Spot"),
}

_OHLCV_NAMES: Final = {
    "Open": OPEN,
    "High": HIGH,
    "Low": LOW,
    "Close": CLOSE,
    "Adj Close": ADJ_CLOSE,
    "Volume": VOLUME,
}


def _data_dir() -> Path:
    # Locate the files without importing `arch`, whose import compiles numba code (~10 s).
    spec = importlib.util.find_spec("arch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the sample provider needs the `arch` package (uv sync)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def extract(symbol: str) -> pl.DataFrame:
    """The raw dataset for `symbol` as shipped: `date` plus the file's value columns."""
    if symbol not in SAMPLE_SYMBOLS:
        known = ", ".join(SAMPLE_SYMBOLS)
        raise ValueError(f"unknown sample symbol {symbol!r}; the sample provider has {known}")
    raw = pl.read_csv(_data_dir() / SAMPLE_SYMBOLS[symbol][0], null_values=["", "."])
    return raw.rename({raw.columns[0]: "date"}).with_columns(
        pl.col("date").str.strptime(pl.Date, "%m/%d/%Y")
    )


def transform(symbol: str, raw: pl.DataFrame) -> pl.DataFrame:
    """Canonical bars: daily timestamps at 00:00 UTC, OHLC from close for close-only series."""
    frame = raw.rename({k: v for k, v in _OHLCV_NAMES.items() if k in raw.columns})
    if OPEN not in frame.columns:  # close-only series: VIX, WTI
        value = next(c for c in frame.columns if c != "date")
        frame = frame.with_columns(pl.col(value).alias(CLOSE)).with_columns(
            pl.col(CLOSE).alias(OPEN),
            pl.col(CLOSE).alias(HIGH),
            pl.col(CLOSE).alias(LOW),
            pl.lit(0.0).alias(VOLUME),
        )
    frame = frame.drop_nulls(CLOSE).with_columns(
        pl.lit(symbol).alias(SYMBOL),
        pl.col("date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias(TS),
    )
    return validate_bars(frame)


def fetch_bars(symbols: list[str]) -> pl.DataFrame:
    """Canonical bars for `symbols`, concatenated."""
    return pl.concat([transform(s, extract(s)) for s in symbols], how="diagonal_relaxed")
