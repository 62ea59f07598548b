"""The fred provider against a local server replaying FRED's documented observations API.

Format followed: `GET /fred/series/observations?series_id=&api_key=&file_type=json
&observation_start=&observation_end=&limit=&offset=` answers `{"count", "offset", "limit",
"observations": [{"date": "YYYY-MM-DD", "value": "1.23" | "."}]}`; an unknown series is
HTTP 400 `{"error_code": 400, "error_message": "Bad Request.  The series does not exist."}`.
Payloads: tests/data/providers/fred/.
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
from engine.providers import fred
from engine.providers.base import ProviderContext
from engine.providers.errors import (
    MissingCredentialsError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    UnknownSymbolError,
)
from engine.providers.standard.bars import BarsQuery
from engine.schema import BAR_SCHEMA
from engine.settings import load_settings

DATA = Path(__file__).parents[3] / "data" / "providers" / "fred"
OBSERVATIONS = "/fred/series/observations"
KEY = "abcdefghijklmnopqrstuvwxyz012345"


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def day(d: int) -> datetime:
    return datetime(2024, 1, d, tzinfo=UTC)


def observation_requests(httpserver: HTTPServer) -> list[Request]:
    return [request for request, _ in httpserver.log if request.path == OBSERVATIONS]


def make_context(
    httpserver: HTTPServer, client: HttpClient, key: str | None = KEY
) -> ProviderContext:
    credentials = {"FRED_API_KEY": key} if key else {}
    return ProviderContext(
        base_urls={"fred": httpserver.url_for("")}, http=client, credentials=credentials
    )


@pytest.fixture
def context(httpserver: HTTPServer) -> Iterator[ProviderContext]:
    with HttpClient(timeout=2.0, retry=RetryPolicy(attempts=3, base_delay=0.01)) as client:
        yield make_context(httpserver, client)


def fetch(query: BarsQuery, context: ProviderContext) -> pl.DataFrame:
    return fred.transform(query, fred.extract(query, context))


def test_observations_become_close_only_bars(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    httpserver.expect_request(OBSERVATIONS).respond_with_json(payload("observations_DGS10.json"))
    bars = fetch(BarsQuery(symbols=("DGS10",), start=day(1), end=day(5)), context)

    assert bars.schema == BAR_SCHEMA
    assert bars["ts"].to_list() == [day(2), day(3), day(4), day(5)]  # "." on Jan 1 dropped
    assert bars.row(0) == ("DGS10", day(2), 3.95, 3.95, 3.95, 3.95, 0.0)
    assert bars.row(3) == ("DGS10", day(5), 4.05, 4.05, 4.05, 4.05, 0.0)
    (request,) = observation_requests(httpserver)
    assert request.args.to_dict() == {
        "series_id": "DGS10",
        "api_key": KEY,
        "file_type": "json",
        "sort_order": "asc",
        "limit": "100000",
        "offset": "0",
        "observation_start": "2024-01-01",
        "observation_end": "2024-01-05",
    }


def test_range_is_cut_to_start_and_end(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(OBSERVATIONS).respond_with_json(payload("observations_DGS10.json"))
    raw = fred.extract(BarsQuery(symbols=("DGS10",)), context)
    bars = fred.transform(BarsQuery(symbols=("DGS10",), start=day(3), end=day(4)), raw)
    assert bars["close"].to_list() == [3.91, 3.99]
    (request,) = observation_requests(httpserver)
    assert "observation_start" not in request.args and "observation_end" not in request.args


def test_more_than_a_page_is_fetched_by_offset(
    httpserver: HTTPServer, context: ProviderContext
) -> None:
    everything = payload("observations_DGS10.json")

    def page(request: Request) -> Response:
        offset, served_limit = int(request.args["offset"]), 3  # the server caps pages at 3
        chunk = everything["observations"][offset : offset + served_limit]
        body = {**everything, "offset": offset, "limit": served_limit, "observations": chunk}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request(OBSERVATIONS).respond_with_handler(page)
    raw = fred.extract(BarsQuery(symbols=("DGS10",)), context)
    bars = fred.transform(BarsQuery(symbols=("DGS10",)), raw)
    assert isinstance(raw, list) and len(raw) == 2
    assert [r.args["offset"] for r in observation_requests(httpserver)] == ["0", "3"]
    assert bars["ts"].to_list() == [day(2), day(3), day(4), day(5)]


def test_unknown_series(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(OBSERVATIONS).respond_with_json(
        payload("error_series_does_not_exist.json"), status=400
    )
    with pytest.raises(UnknownSymbolError, match=r"fred: unknown series 'NOSUCHSERIES'"):
        fred.extract(BarsQuery(symbols=("NOSUCHSERIES",)), context)
    assert len(observation_requests(httpserver)) == 1


def test_rejected_key_is_a_request_error(httpserver: HTTPServer, context: ProviderContext) -> None:
    rejected = {
        "error_code": 400,
        "error_message": "Bad Request.  The value for variable api_key is not registered.",
    }
    httpserver.expect_request(OBSERVATIONS).respond_with_json(rejected, status=400)
    with pytest.raises(
        ProviderRequestError, match=r"fred: request rejected with HTTP 400"
    ) as caught:
        fred.extract(BarsQuery(symbols=("DGS10",)), context)
    assert KEY not in str(caught.value)


def test_missing_key(httpserver: HTTPServer) -> None:
    client = HttpClient()
    with client, pytest.raises(MissingCredentialsError, match="fred needs FRED_API_KEY"):
        fred.extract(BarsQuery(symbols=("DGS10",)), make_context(httpserver, client, key=None))
    assert httpserver.log == []


def test_only_daily_bars() -> None:
    assert fred.PROVIDER.fetcher("bars").intervals == ("1d",)


def test_rate_limit_with_retry_after_then_success(httpserver: HTTPServer) -> None:
    waits: list[float] = []
    too_many = {"error_code": 429, "error_message": "Too Many Requests.  Exceeded Rate Limit"}
    httpserver.expect_oneshot_request(OBSERVATIONS).respond_with_json(
        too_many, status=429, headers={"Retry-After": "20"}
    )
    httpserver.expect_request(OBSERVATIONS).respond_with_json(payload("observations_DGS10.json"))
    with HttpClient(retry=RetryPolicy(attempts=3, base_delay=0.01), sleep=waits.append) as client:
        bars = fetch(BarsQuery(symbols=("DGS10",)), make_context(httpserver, client))
    assert bars.height == 4
    assert waits == [20.0]


def test_persistent_server_errors(httpserver: HTTPServer, context: ProviderContext) -> None:
    httpserver.expect_request(OBSERVATIONS).respond_with_data("Internal Server Error", status=500)
    with pytest.raises(
        ProviderUnavailableError, match=r"fred: server error HTTP 500.*3 attempts"
    ) as caught:
        fred.extract(BarsQuery(symbols=("DGS10",)), context)
    assert len(observation_requests(httpserver)) == 3
    assert KEY not in str(caught.value)


def test_timeout(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.4)
        return Response('{"observations": []}', content_type="application/json")

    httpserver.expect_request(OBSERVATIONS).respond_with_handler(slow)
    client = HttpClient(timeout=0.1, retry=RetryPolicy(attempts=2, base_delay=0.01))
    with (
        client,
        pytest.raises(ProviderUnavailableError, match=r"fred: request timed out") as caught,
    ):
        fred.extract(BarsQuery(symbols=("DGS10",)), make_context(httpserver, client))
    assert KEY not in str(caught.value)
    deadline = time.monotonic() + 5  # let the single-threaded server finish the slow handlers
    while len(observation_requests(httpserver)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize(
    "body",
    [
        "<?xml version='1.0'?><error code='500'/>",
        json.dumps({"count": 1}),
        json.dumps({"observations": [{"date": "2024-01-02", "value": 3.95}]}),
    ],
    ids=["xml", "no-observations", "numeric-value"],
)
def test_garbage_body(httpserver: HTTPServer, context: ProviderContext, body: str) -> None:
    httpserver.expect_request(OBSERVATIONS).respond_with_data(body, content_type="application/json")
    with pytest.raises(ProviderResponseError, match=r"^fred: "):
        fred.extract(BarsQuery(symbols=("DGS10",)), context)


@pytest.mark.live
def test_live_treasury_yield() -> None:
    settings = load_settings()
    if "FRED_API_KEY" not in settings.credentials:
        pytest.skip("FRED_API_KEY is not set")
    with HttpClient() as client:
        context = ProviderContext(
            credentials=settings.credentials, http=client, base_urls=settings.base_urls
        )
        bars = fetch(BarsQuery(symbols=("DGS10",), start=day(1), end=day(5)), context)
    assert bars["ts"].to_list() == [day(2), day(3), day(4), day(5)]
