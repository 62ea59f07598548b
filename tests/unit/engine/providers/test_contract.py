"""The provider contract: every registered provider, one parametrized test each.

Each provider has a `Case`: a query of its fetcher's query type with a start/end window,
the context its extract step gets, and (for network providers) the local replay server's
answers, built from the documented payloads in tests/data/providers/. The test runs the
real path, `fetch()` through a `ReadThroughCache` without Redis, and checks what every
caller relies on: the provider's metadata, the canonical frame, that the raw payload
survives the cache's encoding, and that the transform is a pure function of the payload.

A provider added to the registry without a case here fails, saying to add one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import exchange_calendars
import polars as pl
import pytest
import yfinance as yf
from polars.testing import assert_frame_equal
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response
from yfinance.data import YfData

from engine.io.cache import CacheOutcome, ReadThroughCache
from engine.io.http import HttpClient, RetryPolicy
from engine.providers.alpaca import AlpacaBarsQuery
from engine.providers.base import Fetcher, Provider, ProviderContext, Raw
from engine.providers.fetch import decode_raw, encode_raw, fetch
from engine.providers.files import FilesBarsQuery
from engine.providers.registry import get_provider, provider_names
from engine.providers.standard.bars import INTERVALS, BarsQuery
from engine.providers.synthetic import SyntheticBarsQuery
from engine.schema import (
    ADJ_CLOSE,
    BAR_SCHEMA,
    CLOSE,
    HIGH,
    LOW,
    OPEN,
    REGIME,
    SYMBOL,
    TS,
    VOLUME,
)
from engine.settings import Settings

# yfinance (the yahoo case) warns about its own deprecations; they are not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

DATA = Path(__file__).parents[3] / "data" / "providers"
OPTIONAL_COLUMNS = {ADJ_CLOSE: pl.Float64(), REGIME: pl.Int32()}
OHLCV = (OPEN, HIGH, LOW, CLOSE, VOLUME)
SETTINGS_ENV = {field.metadata["env"] for field in dataclasses.fields(Settings)}


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def payload(provider: str, name: str) -> Any:
    return json.loads((DATA / provider / name).read_text())


# -- contexts ---------------------------------------------------------------------------------

ContextFactory = Callable[[str, HttpClient], ProviderContext]
"""A provider's context from the replay server's base URL and the test's HTTP client."""


def offline(base_url: str, http: HttpClient) -> ProviderContext:
    """No HTTP client, base URL or credentials: all an offline provider may need."""
    return ProviderContext()


def replayed(name: str, **credentials: str) -> ContextFactory:
    """A context sending `name`'s requests to the replay server, with fake credentials."""

    def context(base_url: str, http: HttpClient) -> ProviderContext:
        return ProviderContext(credentials=credentials, http=http, base_urls={name: base_url})

    return context


# -- replay servers: the documented answers, repeatable (the contract asks twice) --------------


def serve_yahoo(server: HTTPServer) -> None:
    YfData.cache_get.cache_clear()  # yfinance memoizes chart responses in-process
    server.expect_request("/").respond_with_data("", status=404)  # fc.yahoo.com (cookie)
    server.expect_request("/v1/test/getcrumb").respond_with_data("test-crumb")
    server.expect_request("/v8/finance/chart/AAPL").respond_with_json(
        payload("yahoo", "chart_AAPL_1d.json")
    )


def serve_binance(server: HTTPServer) -> None:
    server.expect_request("/api/v3/klines").respond_with_json(
        payload("binance", "klines_BTCUSDT_1d.json")
    )


POLYGON_AUTH = {"Authorization": "Bearer test-polygon-key"}


def serve_polygon(server: HTTPServer) -> None:
    first = "/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-04"
    second = "/v2/aggs/ticker/AAPL/range/1/day/1704344400000/1704430800000"  # page 1's next_url
    server.expect_request(first, headers=POLYGON_AUTH).respond_with_json(
        payload("polygon", "aggs_AAPL_1d_page1.json")
    )
    server.expect_request(second, headers=POLYGON_AUTH).respond_with_json(
        payload("polygon", "aggs_AAPL_1d_page2.json")
    )


ALPACA_AUTH = {"APCA-API-KEY-ID": "test-key-id", "APCA-API-SECRET-KEY": "test-secret"}


def serve_alpaca(server: HTTPServer) -> None:
    second_page_token = payload("alpaca", "bars_1d_page1.json")["next_page_token"]

    def pages(request: Request) -> Response:
        page = 2 if request.args.get("page_token") == second_page_token else 1
        body = (DATA / "alpaca" / f"bars_1d_page{page}.json").read_text()
        return Response(body, content_type="application/json")

    server.expect_request("/v2/stocks/bars", headers=ALPACA_AUTH).respond_with_handler(pages)


def serve_fred(server: HTTPServer) -> None:
    server.expect_request("/fred/series/observations").respond_with_json(
        payload("fred", "observations_DGS10.json")
    )


# -- offline sources --------------------------------------------------------------------------


def files_query(folder: Path) -> FilesBarsQuery:
    """Two requested symbols in a canonical CSV that also holds a third and out-of-range days."""
    rows = [
        f"{symbol},2024-01-{day:02d},{10 + day},{12 + day},{9 + day},{11 + day},{1000 * day}"
        for symbol in ("AAA", "BBB", "CCC")
        for day in range(1, 9)
    ]
    path = folder / "bars.csv"
    path.write_text("\n".join(["symbol,ts,open,high,low,close,volume", *rows]) + "\n")
    return FilesBarsQuery(
        symbols=("AAA", "BBB"), start=utc(2024, 1, 3), end=utc(2024, 1, 5), path=str(path)
    )


# -- the cases --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """How to exercise one provider: its query, its context and (if networked) its server."""

    query: Callable[[Path], BarsQuery]
    """The query (of the fetcher's query type, with a window), given a scratch folder."""
    context: ContextFactory
    serve: Callable[[HTTPServer], None] | None = None
    """Sets up the replay server; None for providers that never touch the network."""


CASES: dict[str, Case] = {
    "sample": Case(
        query=lambda _: BarsQuery(
            symbols=("SPX", "VIX"), start=utc(2018, 1, 1), end=utc(2018, 3, 31)
        ),
        context=offline,
    ),
    "synthetic": Case(
        query=lambda _: SyntheticBarsQuery(
            symbols=("SYN0000", "SYN0001"), n_days=60, start=utc(2010, 2, 1), end=utc(2010, 2, 28)
        ),
        context=offline,
    ),
    "files": Case(query=files_query, context=offline),
    "yahoo": Case(
        query=lambda _: BarsQuery(symbols=("AAPL",), start=utc(2024, 1, 2), end=utc(2024, 1, 5)),
        context=replayed("yahoo"),
        serve=serve_yahoo,
    ),
    "binance": Case(
        query=lambda _: BarsQuery(symbols=("BTCUSDT",), start=utc(2024, 1, 2), end=utc(2024, 1, 3)),
        context=replayed("binance"),
        serve=serve_binance,
    ),
    "polygon": Case(
        query=lambda _: BarsQuery(symbols=("AAPL",), start=utc(2024, 1, 2), end=utc(2024, 1, 4)),
        context=replayed("polygon", POLYGON_API_KEY="test-polygon-key"),
        serve=serve_polygon,
    ),
    "alpaca": Case(
        query=lambda _: AlpacaBarsQuery(
            symbols=("AAPL", "MSFT"), start=utc(2024, 1, 3), end=utc(2024, 1, 4)
        ),
        context=replayed(
            "alpaca", ALPACA_API_KEY_ID="test-key-id", ALPACA_API_SECRET_KEY="test-secret"
        ),
        serve=serve_alpaca,
    ),
    "fred": Case(
        query=lambda _: BarsQuery(symbols=("DGS10",), start=utc(2024, 1, 1), end=utc(2024, 1, 4)),
        context=replayed("fred", FRED_API_KEY="abcdefghijklmnopqrstuvwxyz012345"),
        serve=serve_fred,
    ),
}


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def yfinance_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep yfinance's on-disk time-zone and cookie caches out of the user's home."""
    yf.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance")))


@pytest.fixture(params=provider_names())
def name(request: pytest.FixtureRequest) -> str:
    """Every provider name in the registry at collection time."""
    return str(request.param)


def missing_case(name: str) -> str:
    return (
        f"provider {name!r} is registered but has no contract case: "
        f"add a Case for it to CASES in {Path(__file__).name}"
    )


@pytest.fixture
def case(name: str) -> Case:
    if name not in CASES:
        pytest.fail(missing_case(name))
    return CASES[name]


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with HttpClient(timeout=5.0, retry=RetryPolicy(attempts=2, base_delay=0.01)) as client:
        yield client


@dataclass(frozen=True, slots=True)
class Run:
    """One provider's query, context and fetched frame."""

    provider: Provider
    fetcher: Fetcher
    query: BarsQuery
    context: ProviderContext
    frame: pl.DataFrame

    def extract(self) -> Raw:
        """A fresh raw payload for the query (the replay server answers again)."""
        return self.fetcher.extract(self.query, self.context)


@pytest.fixture
def run(name: str, case: Case, httpserver: HTTPServer, http: HttpClient, tmp_path: Path) -> Run:
    """The provider's frame for its case, fetched the way ingest fetches it."""
    provider = get_provider(name)
    fetcher = provider.fetcher("bars")
    query = case.query(tmp_path)
    assert type(query) is fetcher.query_type, "a case queries with its fetcher's query type"
    if case.serve is not None:
        case.serve(httpserver)
    context = case.context(httpserver.url_for(""), http)
    fetched = fetch(provider, fetcher, query, context=context, cache=ReadThroughCache(None), ttl=0)
    assert fetched.outcome is CacheOutcome.BYPASS
    if case.serve is not None:
        assert httpserver.log, f"{name} did not call the replay server"
    return Run(provider, fetcher, query, context, fetched.frame)


# -- the contract -----------------------------------------------------------------------------


def test_every_case_is_a_registered_provider() -> None:
    stale = sorted(set(CASES) - set(provider_names()))
    assert not stale, f"cases for providers no longer registered: {stale}"


def test_metadata(name: str) -> None:
    assert name in CASES, missing_case(name)
    case = CASES[name]
    provider = get_provider(name)
    assert provider.name == name
    assert "bars" in provider.fetchers, f"{name} has no bars fetcher"
    fetcher = provider.fetcher("bars")
    assert fetcher.dataset == "bars"
    assert fetcher.default_ttl >= 0
    assert set(fetcher.intervals) <= set(INTERVALS), f"unknown intervals {fetcher.intervals}"
    assert "1d" in fetcher.intervals
    assert fetcher.max_symbols is None or fetcher.max_symbols >= 1
    unread = sorted(set(provider.credentials) - SETTINGS_ENV)
    assert not unread, f"{name} needs credentials Settings never reads: {unread}"
    assert provider.network is (case.serve is not None), (
        "network providers are replayed from a local server; offline ones get no server"
    )
    assert provider.calendar is None or provider.calendar in exchange_calendars.get_calendar_names()


def test_frame_is_canonical(run: Run) -> None:
    frame, query = run.frame, run.query
    assert not frame.is_empty()
    assert frame.columns[: len(BAR_SCHEMA)] == list(BAR_SCHEMA)
    extra = frame.columns[len(BAR_SCHEMA) :]
    assert set(extra) <= set(OPTIONAL_COLUMNS), f"unexpected columns {extra}"
    assert frame.schema == pl.Schema({**BAR_SCHEMA, **{c: OPTIONAL_COLUMNS[c] for c in extra}})
    assert frame.schema[TS] == pl.Datetime("us", "UTC")

    gaps = frame.select(pl.any_horizontal(pl.col(c).is_null() | pl.col(c).is_nan() for c in OHLCV))
    assert not gaps.to_series().any(), "null or NaN in OHLCV"
    assert not frame.select(SYMBOL, TS).is_duplicated().any(), "duplicate (symbol, ts)"
    assert query.start is not None and query.end is not None
    outside = frame.filter(~pl.col(TS).is_between(query.start, query.end))
    assert outside.is_empty(), f"bars outside [start, end]: {outside[TS].to_list()}"
    assert set(frame[SYMBOL]) <= set(query.symbols)
    assert (frame[HIGH] >= frame[LOW]).all(), "high below low"


def test_payload_survives_the_cache(run: Run) -> None:
    raw = run.extract()
    cached = decode_raw(encode_raw(raw))
    assert_frame_equal(run.fetcher.transform(run.query, cached), run.frame)
    assert_frame_equal(run.fetcher.transform(run.query, raw), run.frame)


def test_transform_is_idempotent(run: Run) -> None:
    raw = run.extract()
    first = run.fetcher.transform(run.query, raw)
    assert_frame_equal(run.fetcher.transform(run.query, raw), first)
