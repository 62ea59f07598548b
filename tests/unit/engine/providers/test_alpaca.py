"""The alpaca provider against a local server replaying Alpaca Market Data v2's bars API.

Format followed: `GET /v2/stocks/bars?symbols=A,B&timeframe=&start=&end=&limit=&adjustment=
&page_token=` with `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` headers answers `{"bars":
{"SYM": [{"t" (RFC 3339), "o", "h", "l", "c", "v", "n", "vw"}]}, "next_page_token": str |
null}`, sorted by symbol then time, `limit` counted across symbols; a malformed symbol is
HTTP 400 `{"code", "message": "invalid symbol: ..."}`. Payloads: tests/data/providers/alpaca/.
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
from engine.providers import alpaca
from engine.providers.alpaca import AlpacaBarsQuery
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

DATA = Path(__file__).parents[3] / "data" / "providers" / "alpaca"
BARS = "/v2/stocks/bars"
CREDENTIALS = {"ALPACA_API_KEY_ID": "test-key-id", "ALPACA_API_SECRET_KEY": "test-secret"}
AUTH = {"APCA-API-KEY-ID": "test-key-id", "APCA-API-SECRET-KEY": "test-secret"}
TOKEN = "QUFQTHxEfDIwMjQtMDEtMDVUMDU6MDA6MDAuMDAwMDAwMDAwWg=="


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def day(d: int, month: int = 1, year: int = 2024) -> datetime:
    return datetime(year, month, d, tzinfo=UTC)


def bars_requests(httpserver: HTTPServer) -> list[Request]:
    return [request for request, _ in httpserver.log if request.path == BARS]


def make_context(
    httpserver: HTTPServer, client: HttpClient, credentials: dict[str, str] = CREDENTIALS
) -> ProviderContext:
    return ProviderContext(
        base_urls={"alpaca": httpserver.url_for("")}, http=client, credentials=credentials
    )


@pytest.fixture
def context(httpserver: HTTPServer) -> Iterator[ProviderContext]:
    with HttpClient(timeout=2.0, retry=RetryPolicy(attempts=3, base_delay=0.01)) as client:
        yield make_context(httpserver, client)


def fetch(query: BarsQuery, context: ProviderContext) -> pl.DataFrame:
    return alpaca.transform(query, alpaca.extract(query, context))


def serve_two_pages(httpserver: HTTPServer) -> None:
    def pages(request: Request) -> Response:
        name = (
            "bars_1d_page2.json"
            if request.args.get("page_token") == TOKEN
            else "bars_1d_page1.json"
        )
        return Response((DATA / name).read_text(), content_type="application/json")

    httpserver.expect_request(BARS, headers=AUTH).respond_with_handler(pages)


def test_pages_of_two_symbols_become_canonical_bars(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    serve_two_pages(httpserver)
    query = AlpacaBarsQuery(symbols=("AAPL", "MSFT"), start=day(2), end=day(5))
    raw = alpaca.extract(query, context)
    bars = alpaca.transform(query, raw)

    assert isinstance(raw, list) and len(raw) == 2
    assert bars.schema == BAR_SCHEMA
    assert bars["symbol"].to_list() == ["AAPL"] * 4 + ["MSFT"] * 4
    # Alpaca stamps daily bars at New York midnight (05:00 UTC); we stamp the session date.
    assert bars["ts"].to_list() == [day(2), day(3), day(4), day(5)] * 2
    assert bars.row(0) == ("AAPL", day(2), 187.15, 188.44, 183.885, 185.64, 82496943.0)
    assert bars.row(7) == ("MSFT", day(5), 368.97, 372.06, 366.5, 367.75, 20987000.0)

    first, second = bars_requests(httpserver)
    assert first.args.to_dict() == {
        "symbols": "AAPL,MSFT",
        "timeframe": "1Day",
        "limit": "10000",
        "adjustment": "all",
        "sort": "asc",
        "start": "2024-01-02T00:00:00Z",
        "end": "2024-01-06T00:00:00Z",  # one day past `end`: session bars start at 05:00 UTC
    }
    assert second.args["page_token"] == TOKEN


def test_range_is_cut_to_start_and_end(httpserver: HTTPServer, context: ProviderContext) -> None:
    serve_two_pages(httpserver)
    raw = alpaca.extract(AlpacaBarsQuery(symbols=("AAPL", "MSFT")), context)
    bars = alpaca.transform(BarsQuery(symbols=("AAPL", "MSFT"), start=day(3), end=day(4)), raw)
    assert bars["ts"].to_list() == [day(3), day(4)] * 2


def test_feed_adjustment_and_intraday_utc(httpserver: HTTPServer, context: ProviderContext) -> None:
    minute_bars = {
        "bars": {
            "SPY": [
                {
                    "t": "2024-07-01T13:30:00Z",
                    "o": 545.63,
                    "h": 545.88,
                    "l": 545.5,
                    "c": 545.7,
                    "v": 410000,
                    "n": 3000,
                    "vw": 545.7,
                }
            ]
        },
        "next_page_token": None,
    }
    httpserver.expect_request(BARS).respond_with_json(minute_bars)
    at = datetime(2024, 7, 1, 13, 30, tzinfo=UTC)
    query = AlpacaBarsQuery(
        symbols=("SPY",), start=at, end=at, interval="1m", feed="iex", adjustment="raw"
    )
    bars = fetch(query, context)
    assert bars["ts"].to_list() == [at]
    (request,) = bars_requests(httpserver)
    assert request.args["timeframe"] == "1Min"
    assert request.args["feed"] == "iex" and request.args["adjustment"] == "raw"
    assert request.args["end"] == "2024-07-01T13:30:00Z"


def test_symbols_without_bars_are_just_absent(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    httpserver.expect_request(BARS).respond_with_json({"bars": {}, "next_page_token": None})
    bars = fetch(AlpacaBarsQuery(symbols=("AAPL",), start=day(6), end=day(7)), context)
    assert bars.is_empty() and bars.schema == BAR_SCHEMA


def test_unknown_symbol(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(BARS).respond_with_json(
        payload("error_invalid_symbol.json"), status=400
    )
    with pytest.raises(UnknownSymbolError, match=r"alpaca: unknown symbol 'AAPL!'"):
        alpaca.extract(AlpacaBarsQuery(symbols=("AAPL!",)), context)
    assert len(bars_requests(httpserver)) == 1


@pytest.mark.parametrize("missing", ["ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY"])
def test_missing_credentials(httpserver: HTTPServer, missing: str) -> None:
    credentials = {k: v for k, v in CREDENTIALS.items() if k != missing}
    client = HttpClient()
    with client, pytest.raises(MissingCredentialsError, match=f"alpaca needs {missing}"):
        alpaca.extract(
            AlpacaBarsQuery(symbols=("AAPL",)), make_context(httpserver, client, credentials)
        )
    assert httpserver.log == []


def test_rate_limit_with_retry_after_then_success(httpserver: HTTPServer) -> None:
    waits: list[float] = []
    httpserver.expect_oneshot_request(BARS).respond_with_json(
        {"message": "too many requests."}, status=429, headers={"Retry-After": "1"}
    )
    serve_two_pages(httpserver)
    with HttpClient(retry=RetryPolicy(attempts=3, base_delay=0.01), sleep=waits.append) as client:
        bars = fetch(AlpacaBarsQuery(symbols=("AAPL", "MSFT")), make_context(httpserver, client))
    assert bars.height == 8
    assert waits == [1.0]
    assert len(bars_requests(httpserver)) == 3


def test_persistent_server_errors(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(BARS).respond_with_json(
        {"message": "internal server error"}, status=500
    )
    with pytest.raises(
        ProviderUnavailableError, match=r"alpaca: server error HTTP 500.*3 attempts"
    ):
        alpaca.extract(AlpacaBarsQuery(symbols=("AAPL",)), context)
    assert len(bars_requests(httpserver)) == 3


def test_timeout(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.4)
        return Response('{"bars": {}}', content_type="application/json")

    httpserver.expect_request(BARS).respond_with_handler(slow)
    client = HttpClient(timeout=0.1, retry=RetryPolicy(attempts=2, base_delay=0.01))
    with client, pytest.raises(ProviderUnavailableError, match=r"alpaca: request timed out"):
        alpaca.extract(AlpacaBarsQuery(symbols=("AAPL",)), make_context(httpserver, client))
    deadline = time.monotonic() + 5  # let the single-threaded server finish the slow handlers
    while len(bars_requests(httpserver)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        json.dumps({"next_page_token": None}),
        json.dumps({"bars": {"AAPL": [{"t": "2024-01-02T05:00:00Z", "o": "187.15"}]}}),
    ],
    ids=["text", "no-bars", "bad-bar"],
)
def test_garbage_body(httpserver: HTTPServer, context: ProviderContext, body: str) -> None:
    httpserver.expect_request(BARS).respond_with_data(body, content_type="application/json")
    with pytest.raises(ProviderResponseError, match=r"^alpaca: "):
        alpaca.extract(AlpacaBarsQuery(symbols=("AAPL",)), context)


def test_plain_bars_query_uses_the_defaults(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    httpserver.expect_request(BARS).respond_with_json({"bars": {}, "next_page_token": None})
    alpaca.extract(BarsQuery(symbols=("AAPL",)), context)
    (request,) = bars_requests(httpserver)
    assert (
        request.args["adjustment"] == "all"
        and "feed" not in request.args
        and "end" not in request.args
    )


@pytest.mark.live
def test_live_daily_bars() -> None:
    settings = load_settings()
    if not {"ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY"} <= settings.credentials.keys():
        pytest.skip("ALPACA_API_KEY_ID / ALPACA_API_SECRET_KEY are not set")
    query = AlpacaBarsQuery(symbols=("AAPL", "MSFT"), start=day(2), end=day(5))
    with HttpClient() as client:
        context = ProviderContext(
            credentials=settings.credentials, http=client, base_urls=settings.base_urls
        )
        bars = fetch(query, context)
    assert bars["ts"].to_list() == [day(2), day(3), day(4), day(5)] * 2
