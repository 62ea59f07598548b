"""The yahoo provider: yfinance for real, against a local server replaying Yahoo's chart API.

Format followed: `GET /v8/finance/chart/{symbol}?period1=&period2=&interval=` answers
`{"chart": {"result": [{"meta": {...}, "timestamp": [...], "indicators": {"quote":
[{"open", "high", "low", "close", "volume"}], "adjclose": [{"adjclose"}]}}], "error": null}}`;
an unknown symbol is HTTP 404 with `"result": null, "error": {"code": "Not Found", ...}`.
Payloads: tests/data/providers/yahoo/.

The network boundary is yfinance's HTTP layer: the provider hands yfinance a curl_cffi
session, and the `yahoo` base-URL override routes that session's *.yahoo.com requests
(the cookie/crumb handshake included) to the local server, so yfinance's own request
building and chart parsing run unchanged.
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
import yfinance as yf
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response
from yfinance.data import YfData

from engine.io.http import HttpClient, RetryPolicy
from engine.providers import yahoo
from engine.providers.base import ProviderContext
from engine.providers.errors import (
    ProviderResponseError,
    ProviderUnavailableError,
    RateLimitedError,
    UnknownSymbolError,
)
from engine.providers.standard.bars import BarsQuery
from engine.schema import ADJ_CLOSE, BAR_SCHEMA

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

DATA = Path(__file__).parents[3] / "data" / "providers" / "yahoo"
CHART = "/v8/finance/chart/"


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def day(d: int) -> datetime:
    return datetime(2024, 1, d, tzinfo=UTC)


def chart_requests(httpserver: HTTPServer) -> list[Request]:
    return [request for request, _ in httpserver.log if request.path.startswith(CHART)]


@pytest.fixture(scope="module", autouse=True)
def yfinance_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep yfinance's on-disk time-zone and cookie caches out of the user's home."""
    yf.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance")))


@pytest.fixture
def server(httpserver: HTTPServer) -> HTTPServer:
    """The local server answering Yahoo's handshake; tests add the chart answers."""
    YfData.cache_get.cache_clear()  # yfinance memoizes chart responses in-process
    httpserver.expect_request("/").respond_with_data("", status=404)  # fc.yahoo.com (cookie)
    httpserver.expect_request("/v1/test/getcrumb").respond_with_data("test-crumb")
    return httpserver


def make_context(server: HTTPServer, attempts: int = 3, timeout: float = 15.0) -> ProviderContext:
    client = HttpClient(retry=RetryPolicy(attempts=attempts, base_delay=0.01), timeout=timeout)
    return ProviderContext(base_urls={"yahoo": server.url_for("")}, http=client)


@pytest.fixture
def context(server: HTTPServer) -> Iterator[ProviderContext]:
    context = make_context(server)
    yield context
    context.client().close()


def fetch(query: BarsQuery, context: ProviderContext) -> pl.DataFrame:
    return yahoo.transform(query, yahoo.extract(query, context))


def test_chart_becomes_canonical_bars(server: HTTPServer, context: ProviderContext) -> None:
    server.expect_request(f"{CHART}AAPL").respond_with_json(payload("chart_AAPL_1d.json"))
    bars = fetch(BarsQuery(symbols=("AAPL",), start=day(2), end=day(5)), context)

    assert bars.schema == pl.Schema({**BAR_SCHEMA, ADJ_CLOSE: pl.Float64})
    # Yahoo stamps daily bars at the 09:30 New York open; we stamp the session date.
    assert bars["ts"].to_list() == [day(2), day(3), day(4), day(5)]
    assert bars.row(0) == ("AAPL", day(2), 187.15, 188.44, 183.885, 185.64, 82488700.0, 184.290421)
    assert bars.row(3) == ("AAPL", day(5), 181.99, 182.76, 180.17, 181.18, 62303300.0, 179.862839)
    history = [r for r in chart_requests(server) if "period1" in r.args]
    assert len(history) == 1
    assert history[0].args["interval"] == "1d"
    assert int(history[0].args["period1"]) == int(day(2).timestamp())
    assert int(history[0].args["period2"]) == int(day(6).timestamp())  # yfinance's end is exclusive
    server.check_assertions()


def test_range_is_cut_to_start_and_end(server: HTTPServer, context: ProviderContext) -> None:
    server.expect_request(f"{CHART}AAPL").respond_with_json(payload("chart_AAPL_1d.json"))
    raw = yahoo.extract(BarsQuery(symbols=("AAPL",), start=day(2), end=day(8)), context)
    assert isinstance(raw, pl.DataFrame) and raw.height == 5
    bars = yahoo.transform(BarsQuery(symbols=("AAPL",), start=day(3), end=day(4)), raw)
    assert bars["ts"].to_list() == [day(3), day(4)]


def test_empty_range_of_a_known_symbol_is_empty(
    server: HTTPServer, context: ProviderContext
) -> None:
    server.expect_request(f"{CHART}AAPL").respond_with_json(payload("chart_empty_range.json"))
    bars = fetch(BarsQuery(symbols=("AAPL",), start=day(6), end=day(7)), context)
    assert bars.is_empty()
    assert bars.schema == pl.Schema({**BAR_SCHEMA, ADJ_CLOSE: pl.Float64})


def test_unknown_symbol(server: HTTPServer, context: ProviderContext) -> None:
    server.expect_request(f"{CHART}NOPE").respond_with_json(
        payload("chart_not_found.json"), status=404
    )
    with pytest.raises(UnknownSymbolError, match=r"yahoo: unknown symbol 'NOPE'"):
        yahoo.extract(BarsQuery(symbols=("NOPE",), start=day(2)), context)
    assert len(chart_requests(server)) == 1  # not retried


def test_needs_no_credentials_and_has_no_4h_bars() -> None:
    assert yahoo.PROVIDER.credentials == ()
    assert "4h" not in yahoo.PROVIDER.fetcher("bars").intervals


def test_rate_limit_with_retry_after_then_success(
    server: HTTPServer, context: ProviderContext
) -> None:
    server.expect_oneshot_request(f"{CHART}AAPL").respond_with_data(
        "Too Many Requests", status=429, headers={"Retry-After": "1"}
    )
    server.expect_request(f"{CHART}AAPL").respond_with_json(payload("chart_AAPL_1d.json"))
    started = time.monotonic()
    bars = fetch(BarsQuery(symbols=("AAPL",), start=day(2), end=day(5)), context)
    assert time.monotonic() - started >= 1.0  # waited Retry-After, not the 0.01 s backoff
    assert bars.height == 4
    assert len(chart_requests(server)) >= 2


def test_persistent_rate_limit(server: HTTPServer) -> None:
    server.expect_request(f"{CHART}AAPL").respond_with_data("Too Many Requests", status=429)
    context = make_context(server, attempts=2)
    with pytest.raises(RateLimitedError, match=r"yahoo: rate limited .*2 attempts"):
        yahoo.extract(BarsQuery(symbols=("AAPL",), start=day(2)), context)


def test_persistent_server_errors(server: HTTPServer, context: ProviderContext) -> None:
    server.expect_request(f"{CHART}AAPL").respond_with_data(
        "<html>Will be right back</html>", status=503
    )
    with pytest.raises(ProviderUnavailableError, match=r"yahoo: server error HTTP 503.*3 attempts"):
        yahoo.extract(BarsQuery(symbols=("AAPL",), start=day(2)), context)
    assert len(chart_requests(server)) == 3


def test_timeout(server: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response(json.dumps(payload("chart_AAPL_1d.json")), content_type="application/json")

    server.expect_request(f"{CHART}AAPL").respond_with_handler(slow)
    context = make_context(server, attempts=2, timeout=0.2)
    with pytest.raises(ProviderUnavailableError, match=r"yahoo: request timed out.*2 attempts"):
        yahoo.extract(BarsQuery(symbols=("AAPL",), start=day(2)), context)
    deadline = time.monotonic() + 5  # let the single-threaded server finish the slow handlers
    while len(chart_requests(server)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize(
    "body",
    ["<html><body>Oops</body></html>", json.dumps({"finance": {"result": None}})],
    ids=["html", "not-a-chart"],
)
def test_garbage_body(server: HTTPServer, context: ProviderContext, body: str) -> None:
    server.expect_request(f"{CHART}AAPL").respond_with_data(body, content_type="application/json")
    with pytest.raises(ProviderResponseError, match=r"^yahoo: chart for 'AAPL' is not chart JSON"):
        yahoo.extract(BarsQuery(symbols=("AAPL",), start=day(2)), context)


@pytest.mark.live
def test_live_daily_chart() -> None:
    YfData.cache_get.cache_clear()
    with HttpClient() as client:
        bars = fetch(
            BarsQuery(symbols=("AAPL",), start=day(2), end=day(5)), ProviderContext(http=client)
        )
    assert bars["ts"].to_list() == [day(2), day(3), day(4), day(5)]
    assert bars["adj_close"].is_not_null().all()


def test_intraday_bars_keep_their_utc_start(server: HTTPServer, context: ProviderContext) -> None:
    chart = payload("chart_AAPL_1d.json")
    result = chart["chart"]["result"][0]
    result["meta"]["dataGranularity"] = "1h"
    # intraday charts list each day's regular session (09:30-16:00 New York)
    session = {"timezone": "EST", "start": 1704205800, "end": 1704229200, "gmtoffset": -18000}
    result["meta"]["tradingPeriods"] = [[session]]
    result["timestamp"] = [1704205800, 1704209400]  # 09:30 and 10:30 New York
    result["indicators"] = {
        "quote": [
            {
                "open": [187.15, 186.0],
                "high": [188.44, 186.5],
                "low": [186.0, 185.2],
                "close": [186.01, 185.9],
                "volume": [20_000_000, 9_000_000],
            }
        ]
    }
    server.expect_request(f"{CHART}AAPL").respond_with_json(chart)
    start, end = datetime(2024, 1, 2, 14, 30, tzinfo=UTC), datetime(2024, 1, 2, 15, 30, tzinfo=UTC)
    bars = fetch(BarsQuery(symbols=("AAPL",), start=start, end=end, interval="1h"), context)
    assert bars["ts"].to_list() == [start, end]
    assert bars["close"].to_list() == [186.01, 185.9]
