"""`polygon` provider: aggregate bars from Polygon.io (needs POLYGON_API_KEY).

Documented endpoint: `GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}
?adjusted=true&sort=asc&limit=50000` answers `{"ticker", "status", "resultsCount",
"results": [{"t": epoch ms, "o", "h", "l", "c", "v", "vw", "n"}], "next_url"?}`; `results`
is absent when there are none, and `next_url` (when present) gives the next page. `from`
and `to` are dates (inclusive) or epoch-ms timestamps. The key travels in the documented
`Authorization: Bearer` header rather than `?apiKey=`, so it stays out of URLs and logs.

Prices are split-adjusted (`adjusted=true`), so there is no separate `adj_close`. Daily and
longer bars (Polygon stamps them at midnight New York time) are stamped at 00:00 UTC of
their session date, like the other providers; intraday bars at their UTC start.
An unknown ticker also answers "no results", as does a range with no sessions, so when a
query finds nothing the ticker is looked up (`GET /v3/reference/tickers/{ticker}`, HTTP 404
when unknown) to tell the two apart. TTL 900 s: Polygon's lower plans are 15 min delayed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import httpx
import msgspec
import polars as pl

from engine.providers.base import Fetcher, Provider, ProviderContext, Raw, documented
from engine.providers.errors import ProviderRequestError, ProviderResponseError, UnknownSymbolError
from engine.providers.standard.bars import INTERVALS, BarsQuery
from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME, validate_bars

__all__ = ["PROVIDER", "TIMESPANS", "extract", "transform"]

NAME: Final = "polygon"
DEFAULT_BASE_URL: Final = "https://api.polygon.io"
CREDENTIAL: Final = "POLYGON_API_KEY"
PAGE_LIMIT: Final = 50_000
SESSION_TIMEZONE: Final = "America/New_York"

TIMESPANS: Final[dict[str, tuple[int, str]]] = {
    "1m": (1, "minute"),
    "5m": (5, "minute"),
    "15m": (15, "minute"),
    "30m": (30, "minute"),
    "1h": (1, "hour"),
    "4h": (4, "hour"),
    "1d": (1, "day"),
    "1wk": (1, "week"),
    "1mo": (1, "month"),
}
"""Our interval names to Polygon's (multiplier, timespan)."""

_SESSION_INTERVALS: Final = frozenset({"1d", "1wk", "1mo"})
_OK_STATUSES: Final = frozenset({"OK", "DELAYED"})
_AGG_SCHEMA: Final = {
    "t": pl.Int64,
    "o": pl.Float64,
    "h": pl.Float64,
    "l": pl.Float64,
    "c": pl.Float64,
    "v": pl.Float64,
}


class _Aggregate(msgspec.Struct):
    start_ms: int = msgspec.field(name="t")
    open: float = msgspec.field(name="o")
    high: float = msgspec.field(name="h")
    low: float = msgspec.field(name="l")
    close: float = msgspec.field(name="c")
    volume: float = msgspec.field(name="v")


class _AggregatesPage(msgspec.Struct):
    status: str
    results: list[_Aggregate] = []
    next_url: str | None = None


def _only_symbol(query: BarsQuery) -> str:
    if len(query.symbols) != 1:
        raise ValueError(f"{NAME} fetches one symbol per call, got {list(query.symbols)}")
    return query.symbols[0]


def _bound(value: datetime, interval: str) -> str:
    """A `from`/`to` path segment: the UTC date for session bars, else epoch ms."""
    if interval in _SESSION_INTERVALS:
        return f"{value.astimezone(UTC):%Y-%m-%d}"
    return str(int(value.timestamp() * 1000))


def _checked(payload: Any) -> dict[str, Any]:
    page = documented(payload, _AggregatesPage, provider=NAME, what="aggregates")
    if page.status not in _OK_STATUSES:
        raise ProviderResponseError(f"{NAME}: aggregates request answered status {page.status!r}")
    assert isinstance(payload, dict)
    return payload


def _ensure_listed(context: ProviderContext, base: str, symbol: str, key: str) -> None:
    """Nothing if Polygon lists `symbol`; an UnknownSymbolError if it does not."""
    url = f"{base}/v3/reference/tickers/{symbol}"
    try:
        context.client().get(url, provider=NAME, headers={"Authorization": f"Bearer {key}"})
    except ProviderRequestError as exc:
        if exc.status == 404:
            raise UnknownSymbolError(
                f"{NAME}: unknown ticker {symbol!r} (no such ticker)"
            ) from None
        raise


def extract(query: BarsQuery, context: ProviderContext) -> Raw:
    """Polygon's aggregate pages for the query's one ticker, oldest first (a list of pages)."""
    symbol = _only_symbol(query)
    key = context.credential(NAME, CREDENTIAL)
    base = context.base_url(NAME, DEFAULT_BASE_URL)
    multiplier, timespan = TIMESPANS[query.interval]
    start = query.start or datetime(1970, 1, 1, tzinfo=UTC)
    end = query.end or datetime.now(UTC)
    url: str | None = (
        f"{base}/v2/aggs/ticker/{symbol}/range/{multiplier}/{timespan}"
        f"/{_bound(start, query.interval)}/{_bound(end, query.interval)}"
    )
    params: dict[str, Any] | None = {"adjusted": "true", "sort": "asc", "limit": PAGE_LIMIT}
    headers = {"Authorization": f"Bearer {key}"}
    pages: list[dict[str, Any]] = []
    while url is not None:
        page = _checked(
            context.client().get_json(url, provider=NAME, params=params, headers=headers)
        )
        pages.append(page)
        # next_url carries the cursor and the original parameters; follow it on our base URL
        # so a configured proxy or replay server also serves the later pages.
        next_url = page.get("next_url")
        url = f"{base}{httpx.URL(next_url).raw_path.decode()}" if next_url else None
        params = None
    if not any(page.get("results") for page in pages):
        _ensure_listed(context, base, symbol, key)
    return pages


def _bar_start(interval: str) -> pl.Expr:
    start = pl.from_epoch("t", time_unit="ms").dt.replace_time_zone("UTC")
    if interval in _SESSION_INTERVALS:
        session_date = start.dt.convert_time_zone(SESSION_TIMEZONE).dt.date()
        return session_date.cast(pl.Datetime("us", "UTC"))
    return start


def transform(query: BarsQuery, raw: Raw) -> pl.DataFrame:
    """Canonical split-adjusted bars (session bars at 00:00 UTC), within the query's range."""
    assert isinstance(raw, list)
    frames = [pl.from_dicts(p["results"], schema=_AGG_SCHEMA) for p in raw if p.get("results")]
    aggregates = pl.concat(frames) if frames else pl.DataFrame(schema=_AGG_SCHEMA)
    bars = aggregates.select(
        pl.lit(_only_symbol(query)).alias(SYMBOL),
        _bar_start(query.interval).alias(TS),
        pl.col("o").alias(OPEN),
        pl.col("h").alias(HIGH),
        pl.col("l").alias(LOW),
        pl.col("c").alias(CLOSE),
        pl.col("v").alias(VOLUME),
    )
    return validate_bars(bars.filter(query.in_range()).unique(TS, keep="last").sort(SYMBOL, TS))


PROVIDER: Final = Provider(
    name=NAME,
    description="Polygon.io aggregate bars (US stocks, split-adjusted); needs POLYGON_API_KEY",
    fetchers={
        "bars": Fetcher(
            dataset="bars",
            query_type=BarsQuery,
            extract=extract,
            transform=transform,
            default_ttl=900,
            max_symbols=1,
            intervals=INTERVALS,
        )
    },
    credentials=(CREDENTIAL,),
    network=True,
    calendar="XNYS",
)
