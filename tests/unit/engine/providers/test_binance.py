"""The binance provider against a local server replaying Binance's documented klines API.

Format followed: `GET /api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=` answers
an array of 12-field arrays `[openTime, open, high, low, close, volume, closeTime,
quoteAssetVolume, numberOfTrades, takerBuyBase, takerBuyQuote, ignore]` (epoch ms, prices
as strings), at most `limit` (1000) per call; an unknown symbol is HTTP 400
`{"code": -1121, "msg": "Invalid symbol."}`. Payloads: tests/data/providers/binance/.
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
from engine.providers import binance
from engine.providers.base import ProviderContext
from engine.providers.errors import (
    ProviderResponseError,
    ProviderUnavailableError,
    UnknownSymbolError,
)
from engine.providers.standard.bars import BarsQuery
from engine.schema import BAR_SCHEMA
from engine.settings import load_settings

DATA = Path(__file__).parents[3] / "data" / "providers" / "binance"
KLINES = "/api/v3/klines"
DAY_MS = 86_400_000


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def klines_requests(httpserver: HTTPServer) -> list[Request]:
    return [request for request, _ in httpserver.log if request.path == KLINES]


@pytest.fixture
def context(httpserver: HTTPServer) -> Iterator[ProviderContext]:
    with HttpClient(timeout=2.0, retry=RetryPolicy(attempts=3, base_delay=0.01)) as client:
        yield ProviderContext(base_urls={"binance": httpserver.url_for("")}, http=client)


def fetch(query: BarsQuery, context: ProviderContext) -> pl.DataFrame:
    return binance.transform(query, binance.extract(query, context))


def day(d: int) -> datetime:
    return datetime(2024, 1, d, tzinfo=UTC)


def test_daily_klines_become_canonical_bars(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    httpserver.expect_request(KLINES).respond_with_json(payload("klines_BTCUSDT_1d.json"))
    bars = fetch(BarsQuery(symbols=("BTCUSDT",), start=day(1), end=day(4)), context)

    assert bars.schema == BAR_SCHEMA
    assert bars["ts"].to_list() == [day(1), day(2), day(3), day(4)]
    assert bars.row(0) == ("BTCUSDT", day(1), 42283.58, 44184.10, 42180.77, 44179.55, 27174.29903)
    assert bars.row(2) == ("BTCUSDT", day(3), 44946.91, 45500.0, 40750.0, 42845.23, 81194.55173)
    (request,) = klines_requests(httpserver)
    assert request.args.to_dict() == {
        "symbol": "BTCUSDT",
        "interval": "1d",
        "startTime": str(1704067200000),
        "endTime": str(1704326400000),
        "limit": "1000",
    }


def test_range_is_cut_to_start_and_end(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(KLINES).respond_with_json(payload("klines_BTCUSDT_1d.json"))
    bars = fetch(BarsQuery(symbols=("BTCUSDT",), start=day(2), end=day(3)), context)
    assert bars["ts"].to_list() == [day(2), day(3)]


@pytest.mark.parametrize(
    ("interval", "sent"), [("1wk", "1w"), ("1mo", "1M"), ("4h", "4h"), ("1m", "1m")]
)
def test_intervals_are_named_as_binance_names_them(
    httpserver: HTTPServer, context: ProviderContext, interval: str, sent: str
) -> None:
    httpserver.expect_request(KLINES).respond_with_json([])
    bars = fetch(BarsQuery(symbols=("ETHUSDT",), interval=interval), context)  # type: ignore[arg-type]
    assert bars.is_empty() and bars.schema == BAR_SCHEMA
    (request,) = klines_requests(httpserver)
    assert request.args["interval"] == sent
    assert request.args["startTime"] == "0" and "endTime" not in request.args


def kline(open_ms: int, price: float) -> list[Any]:
    text = f"{price:.8f}"
    return [
        open_ms,
        text,
        text,
        text,
        text,
        "1.00000000",
        open_ms + 59_999,
        "1.0",
        1,
        "0.5",
        "0.5",
        "0",
    ]


def test_long_ranges_are_paged_by_start_time(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    start_ms = 1704067200000
    first = [kline(start_ms + i * 60_000, 100 + i) for i in range(binance.PAGE_LIMIT)]
    second = [kline(start_ms + (binance.PAGE_LIMIT + i) * 60_000, 2000 + i) for i in range(3)]
    after_first = str(first[-1][0] + 1)
    httpserver.expect_request(
        KLINES,
        query_string={
            "symbol": "BTCUSDT",
            "interval": "1m",
            "startTime": str(start_ms),
            "limit": "1000",
        },
    ).respond_with_json(first)
    httpserver.expect_request(
        KLINES,
        query_string={
            "symbol": "BTCUSDT",
            "interval": "1m",
            "startTime": after_first,
            "limit": "1000",
        },
    ).respond_with_json(second)

    query = BarsQuery(symbols=("BTCUSDT",), start=day(1), interval="1m")
    raw = binance.extract(query, context)
    bars = binance.transform(query, raw)

    assert isinstance(raw, list) and [len(page) for page in raw] == [1000, 3]
    assert bars.height == 1003
    assert bars["ts"].is_sorted() and bars["ts"].is_unique().all()
    assert bars["close"][-1] == 2002.0
    assert bars["ts"][-1] == datetime(2024, 1, 1, 16, 42, tzinfo=UTC)  # minute 1002
    httpserver.check_assertions()


def test_paging_stops_at_end(httpserver: HTTPServer, context: ProviderContext) -> None:
    start_ms = 1704067200000
    full_page = [kline(start_ms + i * 60_000, 1.0) for i in range(binance.PAGE_LIMIT)]
    httpserver.expect_request(KLINES).respond_with_json(full_page)
    end = datetime(2024, 1, 1, 16, 39, tzinfo=UTC)  # the last kline of the page
    bars = fetch(BarsQuery(symbols=("BTCUSDT",), start=day(1), end=end, interval="1m"), context)
    assert len(klines_requests(httpserver)) == 1
    assert bars.height == 1000


def test_unknown_symbol(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(KLINES).respond_with_json(
        payload("error_invalid_symbol.json"), status=400
    )
    with pytest.raises(UnknownSymbolError, match=r"binance: unknown symbol 'NOPEUSDT'"):
        binance.extract(BarsQuery(symbols=("NOPEUSDT",)), context)
    assert len(klines_requests(httpserver)) == 1


def test_needs_no_credentials() -> None:
    assert binance.PROVIDER.credentials == ()
    assert binance.PROVIDER.network and binance.PROVIDER.calendar is None


def test_rate_limit_with_retry_after_then_success(httpserver: HTTPServer) -> None:
    waits: list[float] = []
    httpserver.expect_oneshot_request(KLINES).respond_with_json(
        {"code": -1003, "msg": "Too many requests."}, status=429, headers={"Retry-After": "2"}
    )
    httpserver.expect_request(KLINES).respond_with_json(payload("klines_BTCUSDT_1d.json"))
    with HttpClient(retry=RetryPolicy(attempts=3, base_delay=0.01), sleep=waits.append) as client:
        context = ProviderContext(base_urls={"binance": httpserver.url_for("")}, http=client)
        bars = fetch(BarsQuery(symbols=("BTCUSDT",)), context)
    assert bars.height == 4
    assert waits == [2.0]
    assert len(klines_requests(httpserver)) == 2


def test_persistent_server_errors(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(KLINES).respond_with_data("bad gateway", status=502)
    with pytest.raises(
        ProviderUnavailableError, match=r"binance: server error HTTP 502.*3 attempts"
    ):
        binance.extract(BarsQuery(symbols=("BTCUSDT",)), context)
    assert len(klines_requests(httpserver)) == 3


def test_timeout(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.4)
        return Response("[]", content_type="application/json")

    httpserver.expect_request(KLINES).respond_with_handler(slow)
    with HttpClient(timeout=0.1, retry=RetryPolicy(attempts=2, base_delay=0.01)) as client:
        context = ProviderContext(base_urls={"binance": httpserver.url_for("")}, http=client)
        with pytest.raises(ProviderUnavailableError, match=r"binance: request timed out"):
            binance.extract(BarsQuery(symbols=("BTCUSDT",)), context)
    deadline = time.monotonic() + 5  # let the single-threaded server finish the slow handlers
    while len(klines_requests(httpserver)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize(
    "body",
    [
        "<html><body>502 Bad Gateway</body></html>",
        json.dumps({"symbol": "BTCUSDT"}),
        json.dumps([[1704067200000, 42283.58, "44184.1"]]),
    ],
    ids=["html", "object", "short-kline"],
)
def test_garbage_body(httpserver: HTTPServer, context: ProviderContext, body: str) -> None:
    httpserver.expect_request(KLINES).respond_with_data(body, content_type="application/json")
    with pytest.raises(ProviderResponseError, match=r"^binance: "):
        binance.extract(BarsQuery(symbols=("BTCUSDT",)), context)


def test_one_symbol_per_call() -> None:
    with pytest.raises(ValueError, match="one symbol per call"):
        binance.extract(BarsQuery(symbols=("BTCUSDT", "ETHUSDT")), ProviderContext())


@pytest.mark.live
def test_live_daily_klines() -> None:
    query = BarsQuery(symbols=("BTCUSDT",), start=day(1), end=day(7))
    base_urls = load_settings().base_urls
    with HttpClient() as client:
        bars = fetch(query, ProviderContext(http=client, base_urls=base_urls))
    assert bars["ts"].to_list() == [day(d) for d in range(1, 8)]
    assert (bars["high"] >= bars["low"]).all()
