"""`sample` provider: real daily series shipped inside the `arch` package (no network).

S&P 500 (SPX) and NASDAQ Composite (IXIC) OHLCV 1999-2018; VIX (2014-2018) and WTI crude
(1986-2018) as close-only series (open = high = low = close, volume 0).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

import polars as pl

from engine.providers.base import Fetcher, Provider, ProviderContext, Raw
from engine.providers.errors import UnknownSymbolError
from engine.providers.standard.bars import BarsQuery
from engine.providers.standard.instruments import InstrumentsQuery, select_listed
from engine.schema import ADJ_CLOSE, CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME, validate_bars

__all__ = ["PROVIDER", "SAMPLE_SYMBOLS", "fetch_bars"]

# symbol -> (file under arch/data, name)
SAMPLE_SYMBOLS: Final = {
    "SPX": ("sp500/sp500.csv.gz", "S&P 500 Index"),
    "IXIC": ("nasdaq/nasdaq.csv.gz", "NASDAQ Composite Index"),
    "VIX": ("vix/vix.csv.gz", "CBOE Volatility Index"),
    "WTI": ("wti/wti.csv.gz", "WTI Crude Oil Spot"),
}
_INSTRUMENTS: Final = pl.DataFrame(
    {
        "symbol": list(SAMPLE_SYMBOLS),
        "name": [name for _, name in SAMPLE_SYMBOLS.values()],
        "asset_class": ["index", "index", "index", "commodity"],
        "exchange": ["XNYS", "XNAS", "CBOE", None],
        "currency": ["USD"] * 4,
    }
)

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


def _read(symbol: str) -> pl.DataFrame:
    if symbol not in SAMPLE_SYMBOLS:
        known = ", ".join(SAMPLE_SYMBOLS)
        raise UnknownSymbolError(f"sample: unknown symbol {symbol!r} (it has {known})")
    raw = pl.read_csv(_data_dir() / SAMPLE_SYMBOLS[symbol][0], null_values=["", "."])
    return raw.rename({raw.columns[0]: "date"}).with_columns(
        pl.col("date").str.strptime(pl.Date, "%m/%d/%Y"), pl.lit(symbol).alias(SYMBOL)
    )


def extract(query: BarsQuery, context: ProviderContext) -> Raw:
    """The shipped files for the query's symbols: `date`, `symbol` and the files' columns."""
    return pl.concat([_read(s) for s in query.symbols], how="diagonal_relaxed")


def _to_ohlcv(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.rename({k: v for k, v in _OHLCV_NAMES.items() if k in frame.columns})
    close_only = [c for c in ("vix", "DCOILWTICO") if c in frame.columns]
    if close_only:  # close-only series fill OHLC from their value
        value = pl.coalesce(*close_only)
        base = pl.col(CLOSE).fill_null(value) if CLOSE in frame.columns else value
        frame = frame.with_columns(base.alias(CLOSE))
        frame = frame.with_columns(
            *(
                (pl.col(c).fill_null(pl.col(CLOSE)) if c in frame.columns else pl.col(CLOSE)).alias(
                    c
                )
                for c in (OPEN, HIGH, LOW)
            ),
            (pl.col(VOLUME).fill_null(0.0) if VOLUME in frame.columns else pl.lit(0.0)).alias(
                VOLUME
            ),
        )
    return frame


def transform(query: BarsQuery, raw: Raw) -> pl.DataFrame:
    """Canonical bars at 00:00 UTC each trading day, within the query's range."""
    assert isinstance(raw, pl.DataFrame)
    frame = _to_ohlcv(raw).drop_nulls(CLOSE)
    frame = frame.with_columns(pl.col("date").cast(pl.Datetime("us", "UTC")).alias(TS))
    frame = frame.filter(query.in_range())
    return validate_bars(frame)


def fetch_bars(symbols: list[str]) -> pl.DataFrame:
    """Canonical bars for `symbols` over their whole history (no cache; for seeding)."""
    query = BarsQuery(symbols=tuple(symbols))
    return transform(query, extract(query, ProviderContext()))


def extract_instruments(query: InstrumentsQuery, context: ProviderContext) -> Raw:
    """The four shipped series' descriptions."""
    return _INSTRUMENTS


PROVIDER: Final = Provider(
    name="sample",
    description="S&P 500, NASDAQ Composite, VIX and WTI daily series shipped with `arch`",
    fetchers={
        "bars": Fetcher(
            dataset="bars",
            query_type=BarsQuery,
            extract=extract,
            transform=transform,
            default_ttl=86_400,
            max_symbols=None,
        ),
        "instruments": Fetcher(
            dataset="instruments",
            query_type=InstrumentsQuery,
            extract=extract_instruments,
            transform=select_listed,
            default_ttl=86_400,
            max_symbols=None,
        ),
    },
    calendar="XNYS",
)
