"""`yahoo` provider: Yahoo Finance chart data through the `yfinance` library (no key).

yfinance calls Yahoo's chart API, `GET /v8/finance/chart/{symbol}?period1=&period2=
&interval=`, documented by its answer `{"chart": {"result": [{"meta": {...}, "timestamp":
[...], "indicators": {"quote": [{"open", "high", "low", "close", "volume"}], "adjclose":
[{"adjclose"}]}}], "error": null}}`, through a browser-impersonating curl_cffi session; it
does Yahoo's cookie/crumb handshake and parses the chart into pandas. An unknown symbol is
HTTP 404 with `"error": {"code": "Not Found", ...}`.

yfinance is handed our own session (`_YahooSession`) so that chart requests follow the
same rules as every other provider: 404 -> UnknownSymbolError, 429 -> RateLimitedError
(with Retry-After), 5xx/timeouts -> ProviderUnavailableError, the transient ones retried
here with the ingest run's RetryPolicy. A base-URL override for `yahoo` sends every
*.yahoo.com request (handshake included) to that root: proxies and replay servers.

extract returns yfinance's table as a Polars frame (`ts` in the exchange's time zone,
Yahoo's column names) so the cache can store it. transform stamps daily and longer bars
at 00:00 UTC of the exchange's session date (like the other providers) and intraday bars
at their UTC start; `Adj Close` becomes `adj_close`. Yahoo has no 4-hour bars.
TTL 900 s: Yahoo's quotes are up to 15 minutes delayed.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import polars as pl
import yfinance as yf
from curl_cffi import requests as curl_requests
from curl_cffi.requests import exceptions as curl_errors
from yfinance.exceptions import (
    YFPricesMissingError,
    YFRateLimitError,
    YFTzMissingError,
)

from engine.providers.base import Fetcher, Provider, ProviderContext, Raw
from engine.providers.errors import (
    ProviderError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    RateLimitedError,
    UnknownSymbolError,
)
from engine.providers.standard.bars import BarsQuery
from engine.schema import ADJ_CLOSE, CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME, validate_bars

__all__ = ["PROVIDER", "YAHOO_INTERVALS", "extract", "transform"]

log = logging.getLogger(__name__)

NAME: Final = "yahoo"
DEFAULT_BASE_URL: Final = "https://query2.finance.yahoo.com"

YAHOO_INTERVALS: Final = ("1m", "5m", "15m", "30m", "1h", "1d", "1wk", "1mo")
"""Our intervals Yahoo serves under the same names (it has no 4-hour bars)."""

_SESSION_INTERVALS: Final = frozenset({"1d", "1wk", "1mo"})
_CHART_PATH: Final = "/v8/finance/chart/"
_COLUMNS: Final = {
    "Open": OPEN,
    "High": HIGH,
    "Low": LOW,
    "Close": CLOSE,
    "Adj Close": ADJ_CLOSE,
    "Volume": VOLUME,
}
_RAW_SCHEMA: Final = {TS: pl.Datetime("us", "UTC"), **{name: pl.Float64() for name in _COLUMNS}}


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: fall back to the policy's backoff


class _YahooSession(curl_requests.Session[curl_requests.Response]):
    """yfinance's HTTP session, with RegimeLab's error rules on chart requests."""

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__(impersonate="chrome")
        self._base_url = base_url
        self._timeout = timeout

    def request(self, method: Any, url: str, *args: Any, **kwargs: Any) -> curl_requests.Response:
        """The response to a request; chart failures raised as provider errors."""
        parts = urlsplit(url)
        if self._base_url and (parts.hostname or "").endswith("yahoo.com"):
            url = f"{self._base_url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        if not parts.path.startswith(_CHART_PATH):  # the handshake: yfinance copes itself
            return super().request(method, url, *args, **kwargs)
        try:
            response = super().request(method, url, *args, **{**kwargs, "timeout": self._timeout})
        except curl_errors.Timeout:
            raise ProviderUnavailableError(f"{NAME}: request timed out ({parts.path})") from None
        except curl_errors.RequestException as exc:
            raise ProviderUnavailableError(f"{NAME}: connection failed: {exc}") from None
        status = response.status_code
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise RateLimitedError(f"{NAME}: rate limited (HTTP 429)", retry_after)
        if status >= 500:
            raise ProviderUnavailableError(f"{NAME}: server error HTTP {status} ({parts.path})")
        symbol = parts.path.removeprefix(_CHART_PATH)
        if status == 404:
            raise UnknownSymbolError(f"{NAME}: unknown symbol {symbol!r} (no chart data)")
        try:  # yfinance would read any other body as "no prices"
            is_chart = isinstance(response.json()["chart"], dict)
        except (ValueError, KeyError, TypeError):
            is_chart = False
        if not is_chart:
            raise ProviderResponseError(
                f"{NAME}: chart for {symbol!r} is not chart JSON: {response.text[:80]!r}"
            )
        return response


@functools.cache
def _session(base_url: str | None, timeout: float) -> _YahooSession:
    """One session per API root, so yfinance's cookie and crumb are reused."""
    return _YahooSession(base_url, timeout)


def _only_symbol(query: BarsQuery) -> str:
    if len(query.symbols) != 1:
        raise ValueError(f"{NAME} fetches one symbol per call, got {list(query.symbols)}")
    return query.symbols[0]


def _range(query: BarsQuery) -> dict[str, Any]:
    """yfinance's range arguments; its `end` is exclusive, so one more day is asked for."""
    bounds: dict[str, Any] = {"start": query.start} if query.start else {"period": "max"}
    if query.end is not None:
        bounds["end"] = query.end + timedelta(days=1)
    return bounds


def _to_polars(prices: Any) -> pl.DataFrame:
    """yfinance's pandas price table as Polars: `ts` in the exchange's time zone."""
    if prices.empty:
        return pl.DataFrame(schema=_RAW_SCHEMA)
    exchange_tz = str(prices.index.tz)
    columns = {name: prices[name].to_numpy(dtype="float64") for name in _COLUMNS}
    utc_naive = prices.index.tz_convert("UTC").tz_localize(None).as_unit("us").to_numpy()
    frame = pl.DataFrame({TS: utc_naive, **columns}, nan_to_null=True)
    utc = pl.col(TS).dt.replace_time_zone("UTC")
    return frame.with_columns(utc.dt.convert_time_zone(exchange_tz))


def _history(symbol: str, query: BarsQuery, session: _YahooSession) -> pl.DataFrame:
    """yfinance's unadjusted prices (+ Adj Close) for `symbol`; errors as provider errors."""
    # Unless told otherwise yfinance logs errors and returns an empty table; we need the
    # exceptions to tell an unknown symbol from an outage (`raise_errors=` is deprecated).
    yf.config.debug.hide_exceptions = False
    try:
        prices = yf.Ticker(symbol, session=session).history(
            interval=query.interval,
            auto_adjust=False,
            actions=False,
            **_range(query),
        )
    except ProviderError:
        raise
    except YFRateLimitError:
        raise RateLimitedError(f"{NAME}: rate limited (Too Many Requests)") from None
    except YFTzMissingError:
        raise UnknownSymbolError(f"{NAME}: unknown symbol {symbol!r} (no time zone)") from None
    except YFPricesMissingError as exc:
        if exc.yahoo_reason:  # Yahoo said why (e.g. 1m bars older than 30 days)
            raise ProviderRequestError(f"{NAME}: {symbol}: {exc.yahoo_reason}") from None
        return pl.DataFrame(schema=_RAW_SCHEMA)  # a known symbol, no bars in the range
    except Exception as exc:  # yfinance failing on an unexpected payload
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
        raise ProviderResponseError(
            f"{NAME}: chart for {symbol!r} not understood ({detail})"
        ) from None
    return _to_polars(prices)


def extract(query: BarsQuery, context: ProviderContext) -> Raw:
    """Yahoo's prices for the query's one symbol: `ts` (exchange time zone) + Yahoo's columns."""
    symbol = _only_symbol(query)
    base_url = context.base_url(NAME, DEFAULT_BASE_URL)
    client = context.client()
    session = _session(None if base_url == DEFAULT_BASE_URL else base_url, client.timeout)
    return client.retrying(lambda: _history(symbol, query, session), provider=NAME)


def transform(query: BarsQuery, raw: Raw) -> pl.DataFrame:
    """Canonical bars with adj_close (session bars at 00:00 UTC), within the query's range."""
    assert isinstance(raw, pl.DataFrame)
    if query.interval in _SESSION_INTERVALS:
        start = pl.col(TS).dt.date().cast(pl.Datetime("us", "UTC"))
    else:
        start = pl.col(TS).dt.convert_time_zone("UTC")
    bars = raw.rename(_COLUMNS).with_columns(
        pl.lit(_only_symbol(query)).alias(SYMBOL), start.alias(TS)
    )
    bars = bars.drop_nulls(CLOSE).filter(query.in_range()).unique(TS, keep="last")
    return validate_bars(bars.sort(SYMBOL, TS))


PROVIDER: Final = Provider(
    name=NAME,
    description="Yahoo Finance prices via yfinance (stocks, ETFs, indices, FX, crypto); no key",
    fetchers={
        "bars": Fetcher(
            dataset="bars",
            query_type=BarsQuery,
            extract=extract,
            transform=transform,
            default_ttl=900,
            max_symbols=1,
            intervals=YAHOO_INTERVALS,
        )
    },
    network=True,
    calendar="XNYS",
)
