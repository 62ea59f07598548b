"""`alpaca` provider: historical stock bars from Alpaca Market Data v2 (needs a key pair).

Documented endpoint: `GET /v2/stocks/bars?symbols=A,B&timeframe=1Day&start=&end=&limit=
&adjustment=&feed=&page_token=` with headers `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY`;
answers `{"bars": {"AAPL": [{"t": RFC 3339, "o", "h", "l", "c", "v", "n", "vw"}], ...},
"next_page_token": str | null}`, sorted by symbol then time. `limit` counts bars across all
symbols, so one symbol may span pages; pages are followed until the token is null. A
malformed symbol is HTTP 400 `{"message": "invalid symbol: ..."}`; a well-formed symbol with
no bars is simply absent from `bars` (indistinguishable from a range without sessions).

Daily and longer bars (stamped at midnight New York time by Alpaca) are stamped at 00:00
UTC of their session date, like the other providers; intraday bars at their UTC start.
`adjustment` defaults to "all" (splits and dividends), so there is no separate `adj_close`.
TTL 300 s: the free IEX feed is live, SIP is 15 min delayed on the free plan.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec
import polars as pl

from engine.providers.base import Fetcher, Provider, ProviderContext, Raw, documented
from engine.providers.errors import ProviderRequestError, UnknownSymbolError
from engine.providers.standard.bars import INTERVALS, BarsQuery
from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME, validate_bars

__all__ = ["PROVIDER", "TIMEFRAMES", "AlpacaBarsQuery", "extract", "transform"]

NAME: Final = "alpaca"
DEFAULT_BASE_URL: Final = "https://data.alpaca.markets"
KEY_ID: Final = "ALPACA_API_KEY_ID"
SECRET_KEY: Final = "ALPACA_API_SECRET_KEY"  # noqa: S105  (the variable's name, not a secret)
PAGE_LIMIT: Final = 10_000
MAX_SYMBOLS: Final = 100
SESSION_TIMEZONE: Final = "America/New_York"

TIMEFRAMES: Final[dict[str, str]] = {
    "1m": "1Min",
    "5m": "5Min",
    "15m": "15Min",
    "30m": "30Min",
    "1h": "1Hour",
    "4h": "4Hour",
    "1d": "1Day",
    "1wk": "1Week",
    "1mo": "1Month",
}
"""Our interval names to Alpaca's timeframes."""

_SESSION_INTERVALS: Final = frozenset({"1d", "1wk", "1mo"})
_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INVALID_SYMBOL: Final = re.compile(r"invalid symbol:?\s*([^\"}]*)", re.IGNORECASE)
_BAR_SCHEMA: Final = {
    "t": pl.String,
    "o": pl.Float64,
    "h": pl.Float64,
    "l": pl.Float64,
    "c": pl.Float64,
    "v": pl.Float64,
}


class AlpacaBarsQuery(BarsQuery, frozen=True, kw_only=True):
    """Bars from Alpaca, with its price adjustment and (optionally) a chosen data feed."""

    adjustment: Literal["raw", "split", "dividend", "all"] = "all"
    feed: Literal["sip", "iex"] | None = None
    """None = Alpaca's default for the account (SIP with a subscription, else IEX)."""


class _Bar(msgspec.Struct):
    start: str = msgspec.field(name="t")
    open: float = msgspec.field(name="o")
    high: float = msgspec.field(name="h")
    low: float = msgspec.field(name="l")
    close: float = msgspec.field(name="c")
    volume: float = msgspec.field(name="v")


class _BarsPage(msgspec.Struct):
    bars: dict[str, list[_Bar]] | None
    next_page_token: str | None = None


def _rfc3339(value: datetime) -> str:
    # Alpaca rejects fractions of a second.
    return f"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def _range_params(query: BarsQuery, now: datetime) -> dict[str, str]:
    """`start` (and `end` when it is in the past) as Alpaca wants them."""
    params = {"start": _rfc3339(query.start or _EARLIEST)}
    if query.end is not None:
        # Session bars are stamped at midnight New York (04:00/05:00 UTC), after a date-only
        # end at 00:00 UTC: ask one day further and let transform cut at `end`.
        end = query.end + timedelta(days=1) if query.interval in _SESSION_INTERVALS else query.end
        if end < now:  # a future end upsets plans without recent SIP data; omitted = now
            params["end"] = _rfc3339(end)
    return params


def _page(
    context: ProviderContext, url: str, params: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    """One documented page of bars, or the provider error that explains why not."""
    try:
        payload = context.client().get_json(url, provider=NAME, params=params, headers=headers)
    except ProviderRequestError as exc:
        found = _INVALID_SYMBOL.search(exc.body)
        if found and exc.status == 400:
            symbol = found.group(1).strip() or params["symbols"]
            raise UnknownSymbolError(
                f"{NAME}: unknown symbol {symbol!r} (invalid symbol)"
            ) from None
        raise
    documented(payload, _BarsPage, provider=NAME, what="bars")
    assert isinstance(payload, dict)
    return payload


def extract(query: BarsQuery, context: ProviderContext) -> Raw:
    """Alpaca's bar pages for the query's symbols, in the order served (a list of pages)."""
    headers = {
        "APCA-API-KEY-ID": context.credential(NAME, KEY_ID),
        "APCA-API-SECRET-KEY": context.credential(NAME, SECRET_KEY),
    }
    adjustment = query.adjustment if isinstance(query, AlpacaBarsQuery) else "all"
    feed = query.feed if isinstance(query, AlpacaBarsQuery) else None
    params: dict[str, Any] = {
        "symbols": ",".join(query.symbols),
        "timeframe": TIMEFRAMES[query.interval],
        "limit": PAGE_LIMIT,
        "adjustment": adjustment,
        "sort": "asc",
        **_range_params(query, datetime.now(UTC)),
        **({"feed": feed} if feed else {}),
    }
    url = f"{context.base_url(NAME, DEFAULT_BASE_URL)}/v2/stocks/bars"
    pages = [_page(context, url, params, headers)]
    while token := pages[-1].get("next_page_token"):
        pages.append(_page(context, url, {**params, "page_token": token}, headers))
    return pages


def _bar_start(interval: str) -> pl.Expr:
    start = pl.col("t").str.to_datetime(time_unit="us", time_zone="UTC")
    if interval in _SESSION_INTERVALS:
        session_date = start.dt.convert_time_zone(SESSION_TIMEZONE).dt.date()
        return session_date.cast(pl.Datetime("us", "UTC"))
    return start


def transform(query: BarsQuery, raw: Raw) -> pl.DataFrame:
    """Canonical adjusted bars per symbol (session bars at 00:00 UTC), within the range."""
    assert isinstance(raw, list)
    frames = [
        pl.from_dicts(bars, schema=_BAR_SCHEMA).with_columns(pl.lit(symbol).alias(SYMBOL))
        for page in raw
        for symbol, bars in (page["bars"] or {}).items()
        if bars
    ]
    served = (
        pl.concat(frames) if frames else pl.DataFrame(schema={**_BAR_SCHEMA, SYMBOL: pl.String})
    )
    bars = served.select(
        pl.col(SYMBOL),
        _bar_start(query.interval).alias(TS),
        pl.col("o").alias(OPEN),
        pl.col("h").alias(HIGH),
        pl.col("l").alias(LOW),
        pl.col("c").alias(CLOSE),
        pl.col("v").alias(VOLUME),
    )
    return validate_bars(
        bars.filter(query.in_range()).unique([SYMBOL, TS], keep="last").sort(SYMBOL, TS)
    )


PROVIDER: Final = Provider(
    name=NAME,
    description="Alpaca Market Data v2 stock bars (adjusted); needs ALPACA_API_KEY_ID and secret",
    fetchers={
        "bars": Fetcher(
            dataset="bars",
            query_type=AlpacaBarsQuery,
            extract=extract,
            transform=transform,
            default_ttl=300,
            max_symbols=MAX_SYMBOLS,
            intervals=INTERVALS,
        )
    },
    credentials=(KEY_ID, SECRET_KEY),
    network=True,
    calendar="XNYS",
)
