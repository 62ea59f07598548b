"""`binance` provider: spot candles ("klines") from Binance's public market-data API (no key).

Documented endpoint: `GET /api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=`
answers at most `limit` (<= 1000) klines, oldest first, each an array
`[openTime, open, high, low, close, volume, closeTime, quoteAssetVolume, numberOfTrades,
takerBuyBaseAssetVolume, takerBuyQuoteAssetVolume, ignore]`: times in epoch milliseconds,
prices and volumes as decimal strings. Longer ranges are paged by moving `startTime` past
the last open time. An unknown symbol is HTTP 400 `{"code": -1121, "msg": "Invalid symbol."}`.

Bars are stamped at their open time in UTC; Binance's 1d/1w/1M candles open at 00:00 UTC,
so daily bars carry the same date stamp as the other providers'. The newest candle may
still be forming, hence the short TTL (60 s).
api.binance.com refuses some regions (HTTP 451); the public market-data mirror
https://data-api.binance.vision serves the same endpoint: set it with
`REGIMELAB_PROVIDER_BASE_URLS=binance=https://data-api.binance.vision`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

import msgspec
import polars as pl

from engine.providers.base import Fetcher, Provider, ProviderContext, Raw, documented
from engine.providers.errors import ProviderRequestError, UnknownSymbolError
from engine.providers.standard.bars import INTERVALS, BarsQuery
from engine.providers.standard.instruments import (
    INSTRUMENT_SCHEMA,
    InstrumentsQuery,
    validate_instruments,
)
from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME, validate_bars

__all__ = ["BINANCE_INTERVALS", "PROVIDER", "extract", "transform"]

NAME: Final = "binance"
DEFAULT_BASE_URL: Final = "https://api.binance.com"
PAGE_LIMIT: Final = 1000
"""Largest page the klines endpoint serves."""

BINANCE_INTERVALS: Final[dict[str, str]] = {
    "1m": "1m",
    "5m": "5m",
    "15m": "15m",
    "30m": "30m",
    "1h": "1h",
    "4h": "4h",
    "1d": "1d",
    "1wk": "1w",
    "1mo": "1M",
}
"""Our interval names to Binance's."""

_KLINE_SCHEMA: Final = {
    "open_time": pl.Int64,
    OPEN: pl.String,
    HIGH: pl.String,
    LOW: pl.String,
    CLOSE: pl.String,
    VOLUME: pl.String,
    "close_time": pl.Int64,
    "quote_volume": pl.String,
    "trades": pl.Int64,
    "taker_buy_base_volume": pl.String,
    "taker_buy_quote_volume": pl.String,
    "ignore": pl.String,
}

# One kline as documented; checked on arrival so the cache only ever holds this shape.
_Kline = tuple[int, str, str, str, str, str, int, str, int, str, str, str]

# Binance's error code for a symbol it does not list.
_INVALID_SYMBOL: Final = re.compile(r'"code"\s*:\s*-1121\b')


def _epoch_ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _only_symbol(query: BarsQuery) -> str:
    if len(query.symbols) != 1:
        raise ValueError(f"{NAME} fetches one symbol per call, got {list(query.symbols)}")
    return query.symbols[0]


def _page(context: ProviderContext, url: str, params: dict[str, Any]) -> list[Any]:
    """One documented page of klines, or the provider error that explains why not."""
    try:
        payload = context.client().get_json(url, provider=NAME, params=params)
    except ProviderRequestError as exc:
        if exc.status == 400 and _INVALID_SYMBOL.search(exc.body):
            raise UnknownSymbolError(
                f"{NAME}: unknown symbol {params['symbol']!r} (Binance: Invalid symbol)"
            ) from None
        raise
    documented(payload, list[_Kline], provider=NAME, what="klines")
    assert isinstance(payload, list)
    return payload


def extract(query: BarsQuery, context: ProviderContext) -> Raw:
    """Binance's kline pages for the query's one symbol, oldest first (a list of pages)."""
    symbol = _only_symbol(query)
    url = f"{context.base_url(NAME, DEFAULT_BASE_URL)}/api/v3/klines"
    end_ms = _epoch_ms(query.end)
    params: dict[str, Any] = {
        "symbol": symbol,
        "interval": BINANCE_INTERVALS[query.interval],
        "startTime": _epoch_ms(query.start) or 0,
        "limit": PAGE_LIMIT,
    }
    if end_ms is not None:
        params["endTime"] = end_ms
    pages: list[list[Any]] = []
    while True:
        page = _page(context, url, params)
        pages.append(page)
        if len(page) < PAGE_LIMIT:
            return pages
        params["startTime"] = page[-1][0] + 1
        if end_ms is not None and params["startTime"] > end_ms:
            return pages


def transform(query: BarsQuery, raw: Raw) -> pl.DataFrame:
    """Canonical bars stamped at each candle's open time (UTC), within the query's range."""
    assert isinstance(raw, list)
    frames = [pl.DataFrame(page, schema=_KLINE_SCHEMA, orient="row") for page in raw]
    klines = pl.concat(frames) if frames else pl.DataFrame(schema=_KLINE_SCHEMA)
    bars = klines.select(
        pl.lit(_only_symbol(query)).alias(SYMBOL),
        pl.from_epoch("open_time", time_unit="ms").dt.replace_time_zone("UTC").alias(TS),
        *(pl.col(name).cast(pl.Float64) for name in (OPEN, HIGH, LOW, CLOSE, VOLUME)),
    )
    return validate_bars(bars.filter(query.in_range()).unique(TS, keep="last").sort(SYMBOL, TS))


class _SymbolInfo(msgspec.Struct):
    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str


class _ExchangeInfo(msgspec.Struct):
    symbols: list[_SymbolInfo]


def extract_instruments(query: InstrumentsQuery, context: ProviderContext) -> Raw:
    """`GET /api/v3/exchangeInfo` for the query's symbols (all symbols for a search)."""
    url = f"{context.base_url(NAME, DEFAULT_BASE_URL)}/api/v3/exchangeInfo"
    params = {"symbols": msgspec.json.encode(list(query.symbols)).decode()} if query.symbols else {}
    try:
        payload = context.client().get_json(url, provider=NAME, params=params)
    except ProviderRequestError as exc:
        if exc.status == 400 and _INVALID_SYMBOL.search(exc.body):
            raise UnknownSymbolError(
                f"{NAME}: unknown symbol among {list(query.symbols)}"
            ) from None
        raise
    documented(payload, _ExchangeInfo, provider=NAME, what="exchangeInfo")
    assert isinstance(payload, dict)
    return payload


def transform_instruments(query: InstrumentsQuery, raw: Raw) -> pl.DataFrame:
    """Spot pairs as instruments: name BASE/QUOTE, priced in the quote asset."""
    assert isinstance(raw, dict)
    info = msgspec.convert(raw, _ExchangeInfo)
    frame = pl.DataFrame(
        {
            "symbol": [s.symbol for s in info.symbols],
            "name": [f"{s.baseAsset}/{s.quoteAsset}" for s in info.symbols],
            "asset_class": ["crypto"] * len(info.symbols),
            "exchange": ["BINANCE"] * len(info.symbols),
            "currency": [s.quoteAsset for s in info.symbols],
        },
        schema=dict(INSTRUMENT_SCHEMA),
    )
    return validate_instruments(query.select(frame))


PROVIDER: Final = Provider(
    name=NAME,
    description="Binance spot candles (crypto, 24/7) from the public klines API; no key needed",
    fetchers={
        "bars": Fetcher(
            dataset="bars",
            query_type=BarsQuery,
            extract=extract,
            transform=transform,
            default_ttl=60,
            max_symbols=1,
            intervals=INTERVALS,
        ),
        "instruments": Fetcher(
            dataset="instruments",
            query_type=InstrumentsQuery,
            extract=extract_instruments,
            transform=transform_instruments,
            default_ttl=86_400,
            max_symbols=100,
        ),
    },
    network=True,
    calendar=None,
)
