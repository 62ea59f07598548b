"""The polygon provider against a local server replaying Polygon's documented aggregates API.

Format followed: `GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}
?adjusted=true&sort=asc&limit=50000` answers `{"ticker", "status", "resultsCount",
"results": [{"t" (epoch ms), "o", "h", "l", "c", "v", "vw", "n"}], "next_url"?}` (no
`results` when empty; `next_url` points at the next page); `GET /v3/reference/tickers/
{ticker}` is HTTP 404 `{"status": "NOT_FOUND", ...}` for an unknown ticker.
Payloads: tests/data/providers/polygon/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.io.http import HttpClient, RetryPolicy
from engine.providers import polygon
from engine.providers.base import ProviderContext
from engine.providers.errors import (
    MissingCredentialsError,
    ProviderResponseError,
    ProviderUnavailableError,
    UnknownSymbolError,
)
from engine.providers.standard.bars import BarsQuery
from engine.schema import BAR_SCHEMA
from engine.settings import load_settings

DATA = Path(__file__).parents[3] / "data" / "providers" / "polygon"
KEY = "test-polygon-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DAILY = "/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-05"
NEXT_PAGE = "/v2/aggs/ticker/AAPL/range/1/day/1704344400000/1704430800000"


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def day(d: int, month: int = 1, year: int = 2024) -> datetime:
    return datetime(year, month, d, tzinfo=UTC)


def aggs_requests(httpserver: HTTPServer) -> list[Request]:
    return [request for request, _ in httpserver.log if request.path.startswith("/v2/aggs/")]


def make_context(
    httpserver: HTTPServer, client: HttpClient, key: str | None = KEY
) -> ProviderContext:
    return ProviderContext(
        base_urls={"polygon": httpserver.url_for("")},
        http=client,
        credentials={"POLYGON_API_KEY": key} if key else {},
    )


@pytest.fixture
def context(httpserver: HTTPServer) -> Iterator[ProviderContext]:
    with HttpClient(timeout=2.0, retry=RetryPolicy(attempts=3, base_delay=0.01)) as client:
        yield make_context(httpserver, client)


def fetch(query: BarsQuery, context: ProviderContext) -> pl.DataFrame:
    return polygon.transform(query, polygon.extract(query, context))


def serve_two_pages(httpserver: HTTPServer) -> None:
    first_params = {"adjusted": "true", "sort": "asc", "limit": "50000"}
    httpserver.expect_request(DAILY, query_string=first_params, headers=AUTH).respond_with_json(
        payload("aggs_AAPL_1d_page1.json")
    )
    httpserver.expect_request(
        NEXT_PAGE, query_string={"cursor": "bGltaXQ9MiZzb3J0PWFzYw"}, headers=AUTH
    ).respond_with_json(payload("aggs_AAPL_1d_page2.json"))


def test_pages_follow_next_url_into_canonical_bars(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    serve_two_pages(httpserver)
    query = BarsQuery(symbols=("AAPL",), start=day(2), end=day(5))
    raw = polygon.extract(query, context)
    bars = polygon.transform(query, raw)

    assert isinstance(raw, list) and len(raw) == 2
    assert bars.schema == BAR_SCHEMA
    # Polygon stamps daily bars at New York midnight (05:00 UTC); we stamp the session date.
    assert bars["ts"].to_list() == [day(2), day(3), day(4), day(5)]
    assert bars.row(0) == ("AAPL", day(2), 187.15, 188.44, 183.885, 185.64, 82488674.0)
    assert bars.row(3) == ("AAPL", day(5), 181.99, 182.76, 180.17, 181.18, 62303300.0)
    assert [r.path for r in aggs_requests(httpserver)] == [DAILY, NEXT_PAGE]
    assert all("apiKey" not in r.args for r in aggs_requests(httpserver))  # key only in the header
    httpserver.check_assertions()


def test_range_is_cut_to_start_and_end(httpserver: HTTPServer, context: ProviderContext) -> None:
    serve_two_pages(httpserver)
    query = BarsQuery(symbols=("AAPL",), start=day(2), end=day(5))
    raw = polygon.extract(query, context)
    narrower = BarsQuery(symbols=("AAPL",), start=day(3), end=day(4))
    assert polygon.transform(narrower, raw)["ts"].to_list() == [day(3), day(4)]


def test_summer_session_dates_and_intraday_utc(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    summer = {
        "status": "OK",
        "results": [{"t": 1688356800000, "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 10}],
    }
    hourly = {
        "status": "DELAYED",
        "results": [
            {"t": 1704204000000, "o": 10, "h": 11, "l": 9, "c": 10.5, "v": 1000.5},
            {"t": 1704207600000, "o": 10.5, "h": 12, "l": 10, "c": 11, "v": 2000},
        ],
    }
    httpserver.expect_request(
        "/v2/aggs/ticker/SPY/range/1/day/2023-07-03/2023-07-03"
    ).respond_with_json(summer)
    httpserver.expect_request(
        "/v2/aggs/ticker/SPY/range/1/hour/1704204000000/1704207600000"
    ).respond_with_json(hourly)

    daily = fetch(BarsQuery(symbols=("SPY",), start=day(3, 7, 2023), end=day(3, 7, 2023)), context)
    assert daily["ts"].to_list() == [day(3, 7, 2023)]  # 04:00 UTC in summer -> July 3
    start, end = datetime(2024, 1, 2, 14, tzinfo=UTC), datetime(2024, 1, 2, 15, tzinfo=UTC)
    intraday = fetch(BarsQuery(symbols=("SPY",), start=start, end=end, interval="1h"), context)
    assert intraday["ts"].to_list() == [start, end]
    assert intraday["volume"].to_list() == [1000.5, 2000.0]


def test_empty_range_of_a_known_ticker_is_empty(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    httpserver.expect_request(
        "/v2/aggs/ticker/AAPL/range/1/day/2024-01-06/2024-01-07"
    ).respond_with_json(
        {"ticker": "AAPL", "queryCount": 0, "resultsCount": 0, "adjusted": True, "status": "OK"}
    )
    httpserver.expect_request("/v3/reference/tickers/AAPL", headers=AUTH).respond_with_json(
        payload("ticker_AAPL.json")
    )
    bars = fetch(BarsQuery(symbols=("AAPL",), start=day(6), end=day(7)), context)
    assert bars.is_empty() and bars.schema == BAR_SCHEMA


def test_unknown_ticker(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(
        "/v2/aggs/ticker/ZZZZQ/range/1/day/2024-01-02/2024-01-05"
    ).respond_with_json(payload("aggs_empty.json"))
    httpserver.expect_request("/v3/reference/tickers/ZZZZQ").respond_with_json(
        payload("ticker_not_found.json"), status=404
    )
    with pytest.raises(UnknownSymbolError, match=r"polygon: unknown ticker 'ZZZZQ'"):
        polygon.extract(BarsQuery(symbols=("ZZZZQ",), start=day(2), end=day(5)), context)


def test_missing_key(httpserver: HTTPServer) -> None:
    with HttpClient() as client:
        context = make_context(httpserver, client, key=None)
        with pytest.raises(MissingCredentialsError, match="polygon needs POLYGON_API_KEY"):
            polygon.extract(BarsQuery(symbols=("AAPL",)), context)
    assert httpserver.log == []


def test_rate_limit_with_retry_after_then_success(httpserver: HTTPServer) -> None:
    waits: list[float] = []
    httpserver.expect_oneshot_request(DAILY).respond_with_json(
        {"status": "ERROR", "error": "You've exceeded the maximum requests per minute"},
        status=429,
        headers={"Retry-After": "3"},
    )
    serve_two_pages(httpserver)
    with HttpClient(retry=RetryPolicy(attempts=3, base_delay=0.01), sleep=waits.append) as client:
        bars = fetch(
            BarsQuery(symbols=("AAPL",), start=day(2), end=day(5)), make_context(httpserver, client)
        )
    assert bars.height == 4
    assert waits == [3.0]
    assert len(aggs_requests(httpserver)) == 3


def test_persistent_server_errors(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(DAILY).respond_with_json({"status": "ERROR"}, status=503)
    with pytest.raises(
        ProviderUnavailableError, match=r"polygon: server error HTTP 503.*3 attempts"
    ):
        polygon.extract(BarsQuery(symbols=("AAPL",), start=day(2), end=day(5)), context)
    assert len(aggs_requests(httpserver)) == 3


def test_timeout(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.4)
        return Response(json.dumps({"status": "OK"}), content_type="application/json")

    httpserver.expect_request(DAILY).respond_with_handler(slow)
    client = HttpClient(timeout=0.1, retry=RetryPolicy(attempts=2, base_delay=0.01))
    query = BarsQuery(symbols=("AAPL",), start=day(2), end=day(5))
    with client, pytest.raises(ProviderUnavailableError, match=r"polygon: request timed out"):
        polygon.extract(query, make_context(httpserver, client))
    deadline = time.monotonic() + 5  # let the single-threaded server finish the slow handlers
    while len(aggs_requests(httpserver)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize(
    "body",
    [
        "<html>Service Unavailable</html>",
        json.dumps({"results": [{"t": 1, "o": 1}]}),
        json.dumps(
            {
                "status": "OK",
                "results": [{"t": "yesterday", "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}],
            }
        ),
        json.dumps({"status": "ERROR", "error": "Unknown API Key"}),
    ],
    ids=["html", "no-status", "bad-timestamp", "error-status"],
)
def test_garbage_body(httpserver: HTTPServer, context: ProviderContext, body: str) -> None:
    httpserver.expect_request(DAILY).respond_with_data(body, content_type="application/json")
    with pytest.raises(ProviderResponseError, match=r"^polygon: "):
        polygon.extract(BarsQuery(symbols=("AAPL",), start=day(2), end=day(5)), context)


@pytest.mark.live
def test_live_daily_aggregates() -> None:
    settings = load_settings()
    if "POLYGON_API_KEY" not in settings.credentials:
        pytest.skip("POLYGON_API_KEY is not set")
    query = BarsQuery(symbols=("AAPL",), start=day(2), end=day(5))
    with HttpClient() as client:
        context = ProviderContext(
            credentials=settings.credentials, http=client, base_urls=settings.base_urls
        )
        bars = fetch(query, context)
    assert bars["ts"].to_list() == [day(2), day(3), day(4), day(5)]
